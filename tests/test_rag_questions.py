"""The chapter-09 question set: enough questions, disjoint splits, every cited passage real and supporting."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from course_lib.rag.questions import (
    Question,
    answer_keywords,
    load_questions,
    missing_keywords,
    reference_corpus,
    validate,
)

MAKE_QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "rag" / "make_questions.py"  # the maker, not shipped


@pytest.fixture(scope="module")
def questions():
    return load_questions()


@pytest.fixture(scope="module")
def texts():
    return reference_corpus()


def test_size_mix_and_splits(questions):
    answerable = [q for q in questions if q.answerable]
    assert len(answerable) >= 150
    assert len({q.id for q in questions}) == len(questions)
    dev, test = load_questions("dev"), load_questions("test")
    assert {q.id for q in dev}.isdisjoint({q.id for q in test}) and len(dev) + len(test) == len(questions)
    assert 0.28 <= len(test) / len(questions) <= 0.38
    by_source = Counter(q.source for q in questions)
    assert 0.3 <= by_source["topic"] / len(answerable) <= 0.5                      # ~40 % topics
    assert by_source["none"] >= 15                                                 # refusal cases on both splits
    for source in ("topic", "docstring", "none"):                                  # stratified split
        assert any(q.source == source for q in test) and any(q.source == source for q in dev)
    modules = {p.split(".")[0] for q in answerable for p in q.passages if not p.startswith("topic:")}
    assert len(modules) >= 40


def test_every_passage_exists_and_supports_the_answer(questions, texts):
    validate(questions, texts)                   # raises on any id missing from this Python's corpus
    unsupported = {q.id: missing_keywords(q, texts) for q in questions}
    assert {qid: words for qid, words in unsupported.items() if words} == {}


def test_file_is_the_build_of_the_hand_written_source(questions):
    spec = importlib.util.spec_from_file_location("make_questions", MAKE_QUESTIONS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.build()                        # same seed, same stratified split
    assert [(r["id"], r["question"], tuple(r["passages"]), r["split"]) for r in rows] == \
        [(q.id, q.question, q.passages, q.split) for q in questions]


def test_keyword_check_can_fail(texts):
    q = Question("x1", "How do I parse JSON?", "json.loads parses a YAML document.", ("json.loads",), "dev")
    assert answer_keywords(q.answer) == ["json", "loads", "parses", "yaml", "document"]
    assert missing_keywords(q, texts) == ["yaml"]            # "parses" is found through its stem "parse"
    q_ok = Question("x2", "How do I parse JSON?", "json.loads deserializes a JSON document.", ("json.loads",), "dev")
    assert missing_keywords(q_ok, texts) == []


def test_validate_names_missing_ids(questions):
    bad = [Question("q999", "Where?", "Nowhere.", ("json.dumps", "json.no_such_function"), "dev")]
    with pytest.raises(ValueError, match=r"q999: \['json.no_such_function'\]"):
        validate(bad, {"json.dumps"})
    with pytest.raises(ValueError, match="corpus_ids is empty"):
        validate(questions, [])


def _write(tmp_path, *rows):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD = {"id": "q1", "question": "What?", "answer": "That.", "passages": ["json.dumps"], "split": "dev"}


@pytest.mark.parametrize("row, message", [
    ("{not json", r"q.jsonl line 1: not valid JSON"),
    ('["a list"]', "expected a JSON object, got list"),
    ({k: v for k, v in GOOD.items() if k != "answer"}, r"missing field\(s\) \['answer'\]"),
    (GOOD | {"passages": "json.dumps"}, "field 'passages' must be list, got str"),
    (GOOD | {"passages": [""]}, "'passages' must be a list of non-empty id strings"),
    (GOOD | {"question": "   "}, "'question' and 'answer' must be non-empty"),
    (GOOD | {"split": "train"}, r"split must be one of \('dev', 'test'\), got 'train'"),
])
def test_malformed_lines(tmp_path, row, message):
    with pytest.raises(ValueError, match=message):
        load_questions(path=_write(tmp_path, row))


def test_duplicate_ids_and_bad_split_name(tmp_path):
    with pytest.raises(ValueError, match="line 2: duplicate question id 'q1'"):
        load_questions(path=_write(tmp_path, GOOD, GOOD))
    with pytest.raises(ValueError, match=r"split must be one of \('dev', 'test'\) or None, got 'valid'"):
        load_questions("valid")
    assert load_questions("test", path=_write(tmp_path, GOOD)) == []
