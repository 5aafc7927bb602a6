"""One Chinese term per concept (docs/GLOSSARY.md) and the chapter skeleton of COURSE_DESIGN §9.

The glossary table lists, per concept, the preferred Chinese term, the variants to flag and the
English term. Every markdown cell of chapters/*.ipynb and chapters/solutions/*.ipynb is checked
after masking what is not Chinese prose: code, math, URLs, blockquotes (verbatim quotes of the
study note) and parenthesised or quoted spans without a Chinese character (English glosses).
Each chapter's title cell has 学习目标, 前置 and 对应笔记 (quoting data/learning_note.md verbatim),
and the chapter has a 小结 heading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "docs" / "GLOSSARY.md"
NOTE = ROOT / "data" / "learning_note.md"
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
NOTEBOOKS = CHAPTERS + sorted((ROOT / "chapters" / "solutions").glob("*.ipynb"))
HAN = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
LATIN = re.compile(r"[A-Za-z]")
_MASKS = [
    re.compile(r"```.*?```", re.S),            # fenced code
    re.compile(r"`[^`\n]*`"),                  # inline code
    re.compile(r"\$\$.*?\$\$", re.S),          # display math
    re.compile(r"\$[^$\n]*\$"),                # inline math
    re.compile(r"https?://\S+"),               # URLs
    re.compile(r"\]\([^)\n]*\)"),              # markdown link targets
    re.compile(r"<[^>\n]+>"),                  # HTML tags
    re.compile(r"^ {0,3}>.*$", re.M),          # blockquotes: verbatim quotes of the study note
]
_GLOSSES = re.compile(r"[(（][^()（）\n]*[)）]|\"[^\"\n]*\"|“[^”\n]*”|'[^'\n]*'")


def load_glossary(text: str) -> list[tuple[str, list[str], str]]:
    """Rows ``(preferred, variants, english)`` of the table under the ``## 术语表`` heading."""
    section = text.split("\n## 术语表", 1)
    if len(section) != 2:
        raise ValueError("glossary: no '## 术语表' section")
    rows = []
    for line in section[1].splitlines()[1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].startswith("中文"):
            continue
        variants = [] if cells[1] == "—" else [v.strip() for v in cells[1].split("、") if v.strip()]
        rows.append((cells[0], variants, cells[2]))
    return rows


def prose(markdown: str) -> str:
    """The Chinese prose of a markdown cell: everything the glossary does not govern is blanked."""
    blank = lambda m: " " * len(m.group())
    for pattern in _MASKS:
        markdown = pattern.sub(blank, markdown)
    return _GLOSSES.sub(lambda m: m.group() if HAN.search(m.group()[1:-1]) else blank(m), markdown)


def _variant_pattern(variant: str) -> re.Pattern:
    if LATIN.search(variant):       # an English word: whole word, not part of an identifier or fixed name
        return re.compile(r"(?<![A-Za-z0-9_\-/.])" + re.escape(variant) + r"(?![A-Za-z0-9_\-/]|\.\w)")
    return re.compile(re.escape(variant))


def find_variants(markdown: str, glossary) -> list[tuple[str, str]]:
    """Every ``(variant, preferred)`` found in the prose of one markdown cell, in order of appearance."""
    text = prose(markdown)
    hits = []
    for preferred, variants, _ in glossary:
        for variant in variants:
            hits += [(m.start(), variant, preferred) for m in _variant_pattern(variant).finditer(text)]
    return [(v, p) for _, v, p in sorted(hits)]


def _cells(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell) -> str:
    return "".join(cell["source"])


GLOSSARY_ROWS = load_glossary(GLOSSARY.read_text(encoding="utf-8"))


def test_glossary_table_is_well_formed():
    preferred = [p for p, _, _ in GLOSSARY_ROWS]
    assert len(preferred) >= 20 and len(set(preferred)) == len(preferred), "one row per preferred term"
    assert {"词元", "热图", "控件", "组件", "层归一化"} <= set(preferred)
    for p, _variants, english in GLOSSARY_ROWS:
        assert english and LATIN.search(english), f"glossary row {p}: needs its English term"
        # a preferred term must never be flagged itself
        for _, others, _ in GLOSSARY_ROWS:
            for v in others:
                assert not _variant_pattern(v).search(p), f"glossary: preferred {p} contains variant {v}"


@pytest.mark.parametrize("text, expected", [
    ("每个 token 的缓存", [("token", "词元")]),
    ("下面的部件 (widget) 显示热力图", [("部件", "组件"), ("热力图", "热图")]),
    ("残差连接与层正则化 (LayerNorm)", [("层正则化", "层归一化")]),
    ("一个 batch 里短句用 `<pad>` 补齐", [("batch", "批"), ("补齐", "填充")]),
    ("（$T$ 个 token，每 token 选 2 个）", [("token", "词元"), ("token", "词元")]),
])
def test_checker_flags_planted_variants(text, expected):
    assert find_variants(text, GLOSSARY_ROWS) == expected


@pytest.mark.parametrize("text", [
    "词元 (token) 是最小单位；词元预算 (token budget)",
    "多词元预测 (Multi-Token Prediction, MTP)，每秒 tokens/s",
    "参数 `max_new_tokens` 和 `token_ids`，公式 $\\text{token}_i$",
    "> 全连接前馈模块由全连接前馈层，残差连接和层正则化组成。",
    '模型看到 "the token" 这两个词；链接 [x](https://example.com/token)',
    "变量 max_new_tokens 与 token_ids 原样保留",
])
def test_checker_leaves_code_math_quotes_and_glosses_alone(text):
    assert find_variants(text, GLOSSARY_ROWS) == []


def glossary_problems(name: str, cells) -> list[str]:
    """One message per variant in the markdown cells: notebook, cell id, ``variant → preferred``."""
    return [f"{name}: cell {cell.get('id')}: {variant} → {preferred}"
            for cell in cells if cell["cell_type"] == "markdown"
            for variant, preferred in find_variants(_source(cell), GLOSSARY_ROWS)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name + "/" + p.name)
def test_markdown_follows_the_glossary(path: Path):
    problems = glossary_problems(str(path.relative_to(ROOT)), _cells(path))
    assert not problems, "terms not in docs/GLOSSARY.md form:\n" + "\n".join(problems)


def test_a_planted_variant_in_a_notebook_is_reported():
    cells = _cells(CHAPTERS[0])
    assert glossary_problems("00", cells) == []
    planted = [dict(c) for c in cells]
    planted[0] = dict(planted[0], source=_source(planted[0]) + "\n每个 token 的热力图；代码 `token` 不算。")
    planted.append({"cell_type": "code", "id": "code1", "source": "token = 1  # 层正则化"})
    assert glossary_problems("00", planted) == [
        f"00: cell {cells[0].get('id')}: token → 词元", f"00: cell {cells[0].get('id')}: 热力图 → 热图"]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("**", ""))


NOTE_TEXT = _squash(NOTE.read_text(encoding="utf-8"))


def quoted_fragments(title: str) -> list[str]:
    """The quoted lines after 对应笔记 (``> ...``), each split at the ellipses that mark an omission."""
    after = title.split("对应笔记", 1)[1] if "对应笔记" in title else ""
    lines = [_squash(line.lstrip()[1:]) for line in after.splitlines() if line.lstrip().startswith(">")]
    return [f for line in lines for f in re.split(r"…+", line) if len(f) >= 2]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_title_cell_has_the_skeleton(path: Path):
    cells = _cells(path)
    title = _source(cells[0])
    for part in ("学习目标", "前置", "对应笔记"):
        assert f"**{part}**" in title, f"{path.name}: the title cell has no **{part}** (COURSE_DESIGN §9)"
    fragments = quoted_fragments(title)
    assert fragments, f"{path.name}: 对应笔记 quotes no line of the study note (a '> ' blockquote)"
    for fragment in fragments:
        assert fragment in NOTE_TEXT, f"{path.name}: 对应笔记 quote not in data/learning_note.md: {fragment[:60]}"
    headings = [line for c in cells if c["cell_type"] == "markdown"
                for line in _source(c).splitlines() if line.startswith("#")]
    assert any("小结" in h for h in headings), f"{path.name}: no 小结 heading (COURSE_DESIGN §9)"


def test_quote_check_rejects_a_misquote():
    assert quoted_fragments("**对应笔记**：\n> Transformer 完全基于**注意力机制**") == ["Transformer完全基于注意力机制"]
    assert "Transformer完全基于注意力机制" in NOTE_TEXT
    assert "Transformer完全基于卷积" not in NOTE_TEXT
