"""Corpora, figure registry, mind map and the benchmark harness."""

import json

import pytest

from course_lib import course_map, data, figures
from course_lib.viz import mindmap


def test_python_docs_corpus():
    topics = data.python_docs_topics()
    assert len(topics) >= 70 and "for" in topics
    text = data.python_docs_text()
    assert len(text) > 400_000
    assert data.python_docs_text(max_chars=100) == text[:100]
    with pytest.raises(ValueError, match="max_chars"):
        data.python_docs_text(max_chars=0)


def test_figures_registry_and_generation(tmp_path):
    found = figures.all_figures()
    assert "LLM架构思维导图.png" in found
    (path,) = figures.generate(tmp_path, ["LLM架构思维导图.png"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    with pytest.raises(ValueError, match="unknown figure"):
        figures.generate(tmp_path, ["nope.png"])


def test_without_a_cjk_font_fig_regeneration_fails_once_naming_the_package(tmp_path, monkeypatch):
    import warnings

    from course_lib.viz import static

    monkeypatch.setattr(static, "CJK_FONTS", ("No Such CJK Font",))
    monkeypatch.setattr(static, "packaged_cjk_font", lambda: None)   # and no zhplot either
    monkeypatch.setattr(static, "_warned", False)
    with pytest.raises(RuntimeError, match="no CJK font found.*requirements.txt.*fonts-noto-cjk"):
        figures.generate(tmp_path, ["LLM架构思维导图.png"])
    assert not list(tmp_path.iterdir())  # failed before drawing anything
    with warnings.catch_warnings(record=True) as caught:  # a PNG saved from a notebook: one warning, not one per glyph
        warnings.simplefilter("always")
        plt = static.matplotlib_cjk()
        static.matplotlib_cjk()
        fig, ax = plt.subplots()
        ax.set_title("中文标题")
        static.save(fig, tmp_path / "x.png", dpi=20)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "fonts-noto-cjk" in messages[0], messages


def test_without_a_system_cjk_font_the_packaged_one_draws_the_chinese(tmp_path, monkeypatch):
    """A newcomer's machine: no system CJK font, so the pinned zhplot's Noto Sans SC is registered and used."""
    import warnings

    from matplotlib import font_manager

    from course_lib.viz import static

    font = static.packaged_cjk_font()
    assert font is not None and font.name == "NotoSansSC-Regular.ttf", "requirements.txt pins zhplot"
    monkeypatch.setattr(static, "CJK_FONTS", ("No Such CJK Font",))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"Glyph \d+ .*missing from font")   # a box instead of a glyph
        plt = static.matplotlib_cjk(required=True)                                # no RuntimeError
        static.matplotlib_cjk(required=True)                                      # registered once
        fig, ax = plt.subplots()
        ax.set_title("中文标题：注意力机制与位置编码")
        static.save(fig, tmp_path / "x.png", dpi=20)
    assert plt.rcParams["font.sans-serif"][0] == "Noto Sans SC"
    assert [f.fname for f in font_manager.fontManager.ttflist].count(str(font)) == 1
    assert font_manager.findfont(font_manager.FontProperties(family=["sans-serif"])) == str(font)


def test_every_committed_figure_is_generated_by_code():
    """Fig/ holds only figures that `python -m course_lib.figures` can regenerate."""
    on_disk = {p.name for p in figures.FIG_DIR.glob("*.png")}
    assert on_disk <= set(figures.all_figures()), f"hand-made figures: {sorted(on_disk - set(figures.all_figures()))}"


def test_mind_map_layout_puts_every_family_on_the_map():
    placed = mindmap.layout(mindmap.MODEL_FAMILIES)
    labels = {n.label for n, *_ in placed}
    for family in ("BERT", "T5", "LLaMA / SmolLM2", "DeepSeek-V3", "Mamba", "CLIP"):
        assert family in labels
    root = [p for p in placed if p[3] is None]
    assert len(root) == 1 and root[0][1:3] == (0.0, 0.0)
    ys_by_x = {}
    for _, x, y, _, _ in placed:
        ys_by_x.setdefault(x, []).append(y)
    assert all(len(ys) == len(set(ys)) for ys in ys_by_x.values()), "two boxes on the same spot"
    assert len(mindmap.model_family_figure().layout.annotations) == len(placed)
    sun = mindmap.course_sunburst(course_map.NOTES_SECTIONS).data[0]
    assert "DeepSeek" in sun.labels and "03_llama" in sun.labels


def test_course_map_names_every_notes_section():
    titles = {s.title for s in course_map.NOTES_SECTIONS}
    for heading in ("Transformer", "WebGPT", "LLaMa", "DeepSeek", "LLM、VLM基本框架", "LoRA", "P-Tuning",
                    "RAG", "向量数据库", "agent", "embedding", "DevOps工具", "langchain"):
        assert heading in titles


def test_bench_harness_ratio_table_and_json(tmp_path, monkeypatch, capsys):
    from bench import harness

    monkeypatch.setattr(harness, "REGISTRY", {})
    monkeypatch.setattr(harness, "discover", lambda: None)

    @harness.benchmark("fast-thing")
    def _fast():
        return harness.BenchResult(ours=2.0, reference=4.0, unit="s", higher_is_better=False, target=1.5)

    @harness.benchmark("throughput")
    def _tp():
        return harness.BenchResult(ours=30.0, reference=40.0, unit="tokens/s", higher_is_better=True, target=1.0)

    results = harness.run([])
    assert results["fast-thing"]["ratio"] == 2.0 and results["fast-thing"]["met"] is True
    assert results["throughput"]["ratio"] == 0.75 and results["throughput"]["met"] is False
    table = harness.format_table(results)
    assert "fast-thing" in table and "NO" in table
    json.dumps(results)  # serialisable as written to results.json
    with pytest.raises(ValueError, match="registered twice"):
        harness.benchmark("fast-thing")(_fast)
    with pytest.raises(ValueError, match="no benchmark matches"):
        harness.run(["zzz"])
