"""bench.record: the committed results file is well formed, its targets are COURSE_DESIGN §7's,
the README table is the one it generates, and ``python -m bench --record NAME`` merges rows.

The CLI tests run ``bench.__main__.main`` on a fake registry (two instant rows), so they check the
recording logic, not any timing.
"""

from __future__ import annotations

import copy
import json
import sys

import pytest

from bench import __main__ as bench_main
from bench import harness, record

# COURSE_DESIGN §7's targets, as ratios (bigger is better), by the benchmark row that measures each.
SECTION_7_TARGETS = {
    "llama: decode tokens/s, batch 1, KV cache": 1.3,            # SmolLM2 decode vs transformers ≥ 1.3
    "llama: prefill 512 tokens": 1.0,                            # prefill 512 tokens ≥ 1.0
    "llama: KV cache vs recompute, 256 new tokens": 5.0,         # ≥ 5× faster
    "bpe: encode vs HF tokenizers": 0.25,                        # BPE throughput vs tokenizers ≥ 0.25
    "bpe: encode vs naive merge loop": 10.0,                     # ≥ 10× a naive merge loop
    "vectordb: exact search QPS vs faiss IndexFlatIP": 0.8,      # exact search QPS ≥ 0.8
    "vectordb: IVF-PQ QPS at equal recall@10 vs faiss (MiniLM stdlib passages)": 0.5,  # IVF-PQ ≥ 0.5
    "vectordb: HNSW QPS vs hnswlib (M 16, ef 32)": None,         # HNSW: recall within 0.02, QPS reported
    "rag: BM25 query latency vs rank_bm25": 5.0,                 # ≥ 5× rank_bm25
    "rag: BM25 query latency vs bm25s": 0.5,                     # ≥ 0.5× bm25s
    "mla_absorbed_vs_naive_decode_4k": 1.5,                      # MLA absorbed vs naive at 4k ≥ 1.5×
    "fp8_massive_activation_smollm2": 4.0,                       # block-scaled error ≤ 0.25× per-tensor
    "fp8_outlier_error_100x": None,                              # ordinary outliers: reported, not targeted
    "gpt_tiny_train_tokens_per_s": 1.0,                          # tiny GPT training tokens/s ≥ 1.0
    "serving: continuous batching vs one-at-a-time queue, 16 streaming clients (SmolLM2, HTTP)": 3.0,  # ≥ 3×
    "peft: LoRA training step peak memory vs full fine-tuning (SmolLM2)": 1 / 0.7,  # LoRA peak memory ≤ 0.7×
}


@pytest.fixture(scope="module")
def recorded() -> dict:
    return record.load(record.README_RESULTS)


def test_recorded_file_schema(recorded):
    record.validate(recorded)
    machine = recorded["machine"]
    assert machine["cores"] == 2 and machine["cpu"] and machine["memory_gib"] > 0
    assert machine["libraries"]["transformers"] and machine["libraries"]["faiss-cpu"]
    names = [r["name"] for r in recorded["rows"]]
    assert len(names) == len(set(names))
    for row in recorded["rows"]:
        assert "ratio" in row and "target" in row, row["name"]
        assert row["date"][:4] >= "2026" and row["load_start"] >= 0 and row["load_end"] >= 0, row["name"]


def test_recorded_targets_are_course_design_section_7(recorded):
    rows = {r["name"]: r for r in recorded["rows"]}
    checked = [name for name in SECTION_7_TARGETS if name in rows]
    assert len(checked) >= 5, f"too few §7 rows recorded: {checked}"
    for name in checked:
        want = SECTION_7_TARGETS[name]
        assert rows[name]["target"] == (None if want is None else pytest.approx(want)), name


def test_readme_table_is_generated_from_the_recorded_file(recorded):
    text = (record.REPO / "README.md").read_text(encoding="utf-8")
    assert text == record.rewrite_readme(text, recorded), "README table is stale: run `python -m bench --readme`"
    for row in recorded["rows"]:
        assert f"| {row['name'].replace('|', '/')} | " in text


def _row(ours=2.0, reference=4.0, higher_is_better=False, target=1.5, date="2026-01-01T00:00:00+00:00") -> dict:
    res = harness.BenchResult(ours, reference, "s", higher_is_better, target)
    return {"description": "d", "ours": ours, "reference": reference, "unit": "s", "higher_is_better": higher_is_better,
            "ratio": res.ratio, "target": target, "met": res.met, "reference_name": "ref", "date": date,
            "load_start": 1.0, "load_end": 1.5}


def test_validate_names_each_defect(recorded):
    bad = copy.deepcopy(recorded)
    del bad["rows"][0]["target"]
    with pytest.raises(ValueError, match="lacks.*target"):
        record.validate(bad)
    bad = copy.deepcopy(recorded)
    bad["rows"][0]["ratio"] *= 2
    with pytest.raises(ValueError, match="is not .* from ours/reference"):
        record.validate(bad)
    bad = {"machine": recorded["machine"], "rows": [{**_row(target=3.0), "name": "x", "met": True}]}  # ratio 2 < 3
    with pytest.raises(ValueError, match="met True but ratio 2 vs target 3"):
        record.validate(bad)
    with pytest.raises(ValueError, match="rows must be a non-empty list"):
        record.validate({"machine": recorded["machine"], "rows": []})


def test_rewrite_readme_needs_both_markers_once(recorded):
    with pytest.raises(ValueError, match="must hold"):
        record.rewrite_readme("no markers", recorded)
    with pytest.raises(ValueError, match="must hold"):
        record.rewrite_readme(f"{record.MARK_END}\n{record.MARK_START}", recorded)
    out = record.rewrite_readme(f"a\n{record.MARK_START}\nold\n{record.MARK_END}\nb", recorded)
    assert out.startswith(f"a\n{record.MARK_START}\n") and out.endswith(f"\n{record.MARK_END}\nb") and "old" not in out


def test_merge_replaces_selected_rows_and_keeps_the_others():
    old = {"machine": {}, "rows": [{"name": "a", **_row(date="2026-01-01")}, {"name": "b", **_row(date="2026-01-01")}]}
    merged = record.merge(old, {"new": True}, {"b": _row(ours=1.0, date="2026-02-02"), "c": _row()})
    assert [r["name"] for r in merged["rows"]] == ["a", "b", "c"]
    assert merged["rows"][0]["date"] == "2026-01-01" and merged["rows"][1]["date"] == "2026-02-02"
    assert merged["machine"] == {"new": True}
    assert [r["name"] for r in record.merge(None, {}, {"c": _row()})["rows"]] == ["c"]
    with pytest.raises(ValueError, match="'rows' list"):
        record.merge({"results": {}}, {}, {})


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(harness, "REGISTRY", {})
    monkeypatch.setattr(harness, "discover", lambda: None)
    harness.benchmark("fast-thing")(lambda: harness.BenchResult(2.0, 4.0, "s", False, target=1.5))
    harness.benchmark("throughput")(lambda: harness.BenchResult(30.0, 40.0, "tokens/s", True, target=None))


def _cli(monkeypatch, *args: str) -> None:
    monkeypatch.setattr(sys, "argv", ["bench", *args])
    bench_main.main()


def test_record_writes_every_row_then_a_selection_merges(fake_registry, monkeypatch, tmp_path):
    path, out = tmp_path / "rec.json", str(tmp_path / "results.json")
    _cli(monkeypatch, "--record", str(path), "--out", out)
    first = record.load(path)
    record.validate(first)
    assert [r["name"] for r in first["rows"]] == ["fast-thing", "throughput"]
    tp = first["rows"][1]
    assert tp["target"] is None and tp["met"] is None and tp["ratio"] == 0.75  # rows without a target are recorded
    assert first["machine"]["cores"] and isinstance(first["machine"]["load_start"], list)

    stamp = "1999-01-01T00:00:00+00:00"
    first["rows"][1]["date"] = stamp  # mark the row that the selective run must keep
    path.write_text(json.dumps(first), encoding="utf-8")
    _cli(monkeypatch, "fast", "--record", str(path), "--out", out)
    second = record.load(path)
    assert [r["name"] for r in second["rows"]] == ["fast-thing", "throughput"]
    assert second["rows"][1]["date"] == stamp and second["rows"][0]["date"] != stamp

    _cli(monkeypatch, "--record", str(path), "--out", out)  # a full run (no names) starts afresh
    assert all(r["date"] != stamp for r in record.load(path)["rows"])


def test_run_stamps_rows_and_reports_each_as_it_completes(fake_registry):
    seen = []
    results = harness.run([], on_row=lambda name, row: seen.append((name, row["ratio"])))
    assert seen == [("fast-thing", 2.0), ("throughput", 0.75)]
    row = results["fast-thing"]
    assert row["date"].startswith("20") and row["load_start"] >= 0 and row["seconds"] >= 0
