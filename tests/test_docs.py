"""The engineering docs (docs/*.md) stay readable and true: no internal labels, no dead references.

A reader of ``docs/`` was never part of how the repository was built, so labels of that process
(work-stream codes like "h15", branch or worktree names, "this session", dated log headings) mean
nothing to them. And a backticked repository path or ``course_lib.…`` name that no longer exists
sends them looking for something that is gone: every one must resolve on the checkout under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))

#: Patterns of internal labels, each with what it catches. Case-sensitive where case matters (H100 is a GPU).
LABELS = [
    (re.compile(r"(?<![\w-])h\d+[a-z]*\b"), "a work-stream code like h15 or h17box"),
    (re.compile(r"\bworktrees?\b", re.I), "a worktree"),
    (re.compile(r"\b(?:merg\w*|git|this|that|its|own|feature|my|your)\s+branch\b|\bbranch\s+[`'\"]", re.I),
     "a git branch name"),
    (re.compile(r"\b(?:this|that|the|first|second|third|fourth|previous|earlier|next|last|another|each|every|"
                r"helper|engineer'?s?)\s+session\b(?!\s*-?(?:scoped|fixtures?)\b)", re.I),
     "a working session"),
    (re.compile(r"\bhelpers?\b(?!\s+(?:functions?|modules?|scripts?|class(?:es)?)\b)", re.I), "a helper (an agent)"),
    (re.compile(r"^#{1,6} .*\b20\d\d-\d\d-\d\d\b", re.M), "a dated log heading"),
]

#: Where a backticked path may point: the repository's top-level folders that docs talk about.
PATH = re.compile(r"(?<![\w./-])((?:course_lib|tests|chapters|scripts|bench|data|docs|Fig)/[\w./<>*{}-]*)(?:::(\w+))?")
MODULE = re.compile(r"(?<![\w.])course_lib(?:\.\w+)+")
#: Files that a documented command writes and git ignores: they exist only after the command ran.
GENERATED = {"bench/results.json": "written by `python -m bench` (.gitignore)"}


def label_problems(text: str) -> list[str]:
    """Each internal label in ``text`` as 'line N: what (the match)'."""
    found = []
    for pattern, what in LABELS:
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"line {line}: {what} ({m.group(0)!r})")
    return found


def _is_placeholder(path: str) -> bool:
    return any(c in path for c in "*<>{}") or "NN" in path or "..." in path


def _module_source(parts: list[str]) -> tuple[int, str] | None:
    """(how many of ``parts`` name a module or package, its source) for the longest such prefix."""
    for i in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:i])
        for file in (base.with_suffix(".py"), base / "__init__.py"):
            if file.is_file():
                return i, file.read_text(encoding="utf-8")
    return None


def without_old_columns(text: str) -> str:
    """``text`` with the cells of every table column headed "old" blanked (a rename table names what is gone)."""
    out, old = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            old = None
            out.append(line)
            continue
        cells = line.split("|")
        if old is None:
            old = [i for i, c in enumerate(cells) if c.strip() == "old"]
        out.append("|".join("" if i in old else c for i, c in enumerate(cells)))
    return "\n".join(out)


def reference_problems(text: str) -> list[str]:
    """Backticked repository paths (and ``course_lib.`` names) in ``text`` that do not exist in this checkout."""
    found = []
    for span in re.findall(r"`([^`\n]+)`", text):
        for m in PATH.finditer(span):
            path, test = m.group(1).rstrip(".,;:)"), m.group(2)
            if _is_placeholder(path) or path in GENERATED:
                continue
            file = ROOT / path
            if not (file.exists() or file.with_suffix(".py").exists()):  # `course_lib/__init__` names a module
                found.append(f"{path}: no such file or folder")
            elif test and not re.search(rf"^def {test}\b", file.read_text(encoding="utf-8"), re.M):
                found.append(f"{path}::{test}: no such test")
        for m in MODULE.finditer(span):
            parts = m.group(0).split(".")
            module = _module_source(parts)
            if module is None:
                found.append(f"{m.group(0)}: no such module")
                continue
            depth, source = module
            if depth < len(parts) and not re.search(rf"\b{re.escape(parts[depth])}\b", source):
                found.append(f"{m.group(0)}: {'.'.join(parts[:depth])} defines no {parts[depth]!r}")
    return found


def test_there_are_docs():
    names = {p.name for p in DOCS}
    assert {"NOTES.md", "LAYOUT.md"} <= names, names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_docs_carry_no_internal_labels(doc):
    problems = label_problems(doc.read_text(encoding="utf-8"))
    assert not problems, f"{doc.name}: internal labels mean nothing to a reader:\n" + "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_backticked_paths_and_modules_exist(doc):
    problems = reference_problems(without_old_columns(doc.read_text(encoding="utf-8")))
    assert not problems, f"{doc.name} points at things that do not exist:\n" + "\n".join(problems)


@pytest.mark.parametrize("text", [
    "## Chapter 09: RAG (`course_lib/rag/`, h16lib, 2026-12-01)",
    "Apply after merging branch `h13`, as literal search/replace",
    "### Last measurements, h12 (load 11)",
    "Third session (issues 13–16 finished): whole pytest",
    "it was not tried in this session (compile time)",
    "memory is a controller inside the session machinery's own cgroup",
    "Create your own git worktree",
    "each helper commits on its own branch",
    "## Earlier measurements (2026-11-29, quiet machine)",
])
def test_label_patterns_catch_the_labels_of_the_old_notes(text):
    assert label_problems(text), text


@pytest.mark.parametrize("text", [
    "Expensive references are session-scoped fixtures in `tests/conftest.py`",
    "unit tests use the session fixture `smollm2_bpe`",
    "history per `config[\"configurable\"][\"session_id\"]`",
    "loopback rendezvous on a free port, own session, whole group killed on timeout",
    "The lent H100 and H200 (seen 2026-11-30); sha256 of the files; 0x1D",
    "RunnableParallel (branches on threads); a small helper function",
])
def test_label_patterns_leave_ordinary_words_alone(text):
    assert not label_problems(text), label_problems(text)


def test_rename_tables_are_checked_in_their_new_column_only():
    table = "| where | old | new |\n|---|---|---|\n| 02b | `course_lib.vlm_data` | `course_lib/no_such_file.py` |\n"
    assert reference_problems(without_old_columns(table)) == ["course_lib/no_such_file.py: no such file or folder"]


def test_reference_check_finds_missing_paths_tests_and_names():
    text = ("`course_lib/no_such_module.py`, `tests/test_docs.py::test_no_such_test`, "
            "`course_lib.generation.no_such_function`, `course_lib.no_such_package.x`, "
            "`course_lib/generation.py`, `tests/test_docs.py::test_there_are_docs`, `course_lib/__init__`, "
            "`course_lib.generation.generate`, `chapters/NN_name.ipynb`, `tests/test_<module>.py`, `bench/results.json`")
    assert reference_problems(text) == [
        "course_lib/no_such_module.py: no such file or folder",
        "tests/test_docs.py::test_no_such_test: no such test",
        "course_lib.generation.no_such_function: course_lib.generation defines no 'no_such_function'",
        "course_lib.no_such_package.x: course_lib defines no 'no_such_package'",
    ]
