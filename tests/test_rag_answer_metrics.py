"""Answer metrics (key facts, refusal, ALCE citations) on hand-made cases, the hand labels, and the grounded answerer."""

import json

import pytest

from course_lib.datasets import dataset
from course_lib.rag import RAG, BM25Retriever, Chunk, GroundedRAG, Passage
from course_lib.rag.answer import ENGLISH_ONLY, MAX_QUESTION_CHARS, REFUSAL
from course_lib.rag.answer_metrics import (
    CORRECT,
    answer_score,
    citation_scores,
    is_refusal,
    refusal_scores,
    sentences,
    summarize,
)
from course_lib.rag.evaluate import answer_row
from course_lib.rag.grounded import NO_OVERLAP, passage_sentences
from course_lib.rag.questions import Question

JSON = Passage("json.dumps#0", "json.dumps", "json.dumps", "Serialize obj to a JSON formatted str. If indent is a "
               "non-negative integer, JSON array elements are pretty-printed with that indent level.", 1.0)
SLEEP = Passage("time.sleep#0", "time.sleep", "time.sleep", "Delay execution for a given number of seconds.", 0.5)
GETENV = Passage("os.getenv#0", "os.getenv", "os.getenv", "Get an environment variable, return None if it doesn't "
                 "exist. The optional second argument can specify an alternate default.", 0.4)


def test_answer_score_counts_reference_key_words_with_stems():
    ref = "json.dumps serializes obj to a JSON formatted str."            # keys: json dumps serializes obj formatted str
    assert answer_score("Use json.dumps: it serializes obj to a JSON formatted str.", ref) == 1.0
    assert answer_score("json.dumps [1] serialize the obj, formatted as str", ref) == 1.0        # stem: serialize(s)
    assert answer_score("Use pickle.", ref) == 0.0
    assert answer_score("Use json.loads.", ref) == pytest.approx(1 / 6)                           # only "json"
    assert answer_score("the strings", ref) == 0.0                        # "str" is a word, not a substring of "strings"
    with pytest.raises(ValueError, match="no key words"):
        answer_score("x", "It is.")
    with pytest.raises(TypeError):
        answer_score(None, ref)


def test_sentence_without_citation_fails_citation_recall():
    # q127's defect: an uncited, false sentence beside a cited one
    s = citation_scores("json.dumps serializes obj to a JSON formatted str [1]. The size of an object in bytes is "
                        "4 bytes.", [JSON])
    assert s.recall == 0.5 and s.uncited == ["The size of an object in bytes is 4 bytes."] and s.precision == 1.0
    assert citation_scores("Serialize obj to a JSON formatted str.", [JSON]).recall == 0.0
    assert citation_scores("Serialize obj to a JSON formatted str.", [JSON]).precision is None


def test_wrong_citation_fails_citation_precision():
    # the defaultdict question answered from os.getenv: cites [2] for a claim [2] does not hold
    s = citation_scores("A defaultdict gives missing keys a default value [2].", [JSON, GETENV])
    assert s.recall == 0.0 and s.precision == 0.0 and s.imprecise == [(2, "A defaultdict gives missing keys a "
                                                                          "default value [2].")]
    assert citation_scores("It delays execution for seconds [1].", [JSON, SLEEP]).precision == 0.0
    assert citation_scores("It delays execution for seconds [2].", [JSON, SLEEP]).precision == 1.0
    invalid = citation_scores("It delays execution for seconds [7].", [JSON, SLEEP])
    assert invalid.precision == 0.0 and invalid.recall == 0.0                # no such source


def test_alce_precision_keeps_a_citation_needed_for_joint_support():
    # neither source alone holds half of the words, together they do: both citations are needed (ALCE §2.3)
    a, b = "alpha beta gamma delta", "epsilon zeta eta theta"
    s = citation_scores("alpha beta gamma epsilon zeta eta [1][2].", [a, b])
    assert s.recall == 1.0 and s.precision == 1.0
    # a second citation that neither supports alone nor is needed is irrelevant: precision 1/2
    s = citation_scores("Delay execution for seconds [2][1].", [JSON, SLEEP])
    assert s.recall == 1.0 and s.precision == 0.5 and s.imprecise[0][0] == 1


def test_sentences_attach_trailing_citations_and_skip_empty_ones():
    assert sentences("Serialize obj. [1]\nYes.\n[2]") == ["Serialize obj. [1]"]
    assert sentences("A sentence here [1]. Another one there [2].") == ["A sentence here [1].", "Another one there [2]."]


def test_refusal_on_answerable_counts_against_precision():
    answerable = [True, True, False, False]
    perfect = refusal_scores([False, False, True, True], answerable)
    assert perfect["precision"] == perfect["recall"] == perfect["f1"] == 1.0
    over = refusal_scores([True, False, True, True], answerable)       # refused one answerable question
    assert over["precision"] == pytest.approx(2 / 3) and over["recall"] == 1.0 and over["f1"] == pytest.approx(0.8)
    under = refusal_scores([False, False, True, False], answerable)
    assert under["precision"] == 1.0 and under["recall"] == 0.5
    assert refusal_scores([False] * 4, answerable)["f1"] == 0.0
    with pytest.raises(ValueError, match="unanswerable"):
        refusal_scores([False], [True])
    assert is_refusal(REFUSAL) and is_refusal("I don’t know.") and not is_refusal("Use json.dumps [1].")


def test_summarize_and_answer_row():
    q_yes = Question("q1", "How do I make JSON?", "json.dumps serializes obj to a JSON formatted str.",
                     ("json.dumps",), "test")
    q_no = Question("q2", "Who won the cup?", "Not answered by the corpus.", (), "test")
    from course_lib.rag.answer import Answer

    good = Answer(q_yes.question, "json.dumps: Serialize obj to a JSON formatted str. [1]", [JSON], False, None,
                  {"retrieve": 1.0})
    said_no = Answer(q_no.question, "I don't know.", [SLEEP], False, None, {"generate": 3.0})
    rows = [answer_row(q_yes, good), answer_row(q_no, said_no)]
    assert rows[0]["score"] == 1.0 and rows[0]["cite_recall"] == 1.0 and rows[1]["refused"]
    table = summarize(rows)
    assert table["answer score"] == 1.0 and table["refusal F1"] == 1.0 and table["s/question"] == 2.0
    assert table["citation precision"] == 1.0 and table["questions"] == 2


def test_key_fact_metric_agrees_with_hand_labels():
    """The metric (score ≥ CORRECT, fixed beforehand) against 40 hand-labelled dev answers."""
    rows = [json.loads(line) for line in dataset("rag/answer_labels.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 40 and all(r["id"] for r in rows)
    metric = [not is_refusal(r["answer"]) and answer_score(r["answer"], r["reference"]) >= CORRECT for r in rows]
    human = [r["correct"] for r in rows]
    agree = sum(m == h for m, h in zip(metric, human)) / len(rows)
    p_m, p_h = sum(metric) / len(rows), sum(human) / len(rows)
    chance = p_m * p_h + (1 - p_m) * (1 - p_h)
    kappa = (agree - chance) / (1 - chance)
    disagree = sorted(r["id"] for r, m, h in zip(rows, metric, human) if m != h)
    assert agree == 0.9 and kappa == pytest.approx(0.792, abs=1e-3), (agree, kappa)
    assert disagree == ["q080", "q139", "q147", "q175"]


CORPUS = [Chunk(f"{p.doc_id}#0", p.doc_id, p.title, p.text, 0) for p in (JSON, SLEEP, GETENV)]


def test_grounded_answerer_quotes_and_cites():
    bm25 = BM25Retriever(CORPUS)
    rag = GroundedRAG(bm25, k=2, idf=GroundedRAG.idf_from(bm25))
    ans = rag.answer("How do I pretty-print JSON with an indent?")
    assert not ans.refused and ans.text.startswith("json.dumps: ") and ans.text.endswith("[1]")
    assert ans.citations.ok and ans.citations.recall == ans.citations.precision == 1.0
    assert "pretty-printed" in ans.text.splitlines()[0]                      # the sentence about indent comes first
    assert passage_sentences("Title\n*****\n\nFirst one here. Second one here [4].\n\n>>> code()") == [
        "First one here.", "Second one here ."]


def test_grounded_bad_input_errors_or_refuses():
    bm25 = BM25Retriever(CORPUS)
    rag = GroundedRAG(bm25, k=2, threshold=0.3)
    for empty in ("", "   \n"):
        with pytest.raises(ValueError, match="non-empty string"):
            rag.answer(empty)
    with pytest.raises(ValueError, match=f"at most {MAX_QUESTION_CHARS:,}"):
        rag.answer("why " * 25_000)                                           # 100 kB
    with pytest.raises(TypeError, match="must be a str"):
        rag.answer(None)
    for chinese in ("如何把字典转换成字符串？", "如何把字典转换成 JSON 字符串？"):   # the corpus is English
        ans = rag.answer(chinese)
        assert ans.refused and ans.text == ENGLISH_ONLY and ans.citations is None
    assert RAG(bm25, model=object(), tokenizer=object()).answer("如何把字典转换成 JSON 字符串？").text == ENGLISH_ONLY
    with pytest.raises(ValueError, match=f"at most {MAX_QUESTION_CHARS:,}"):
        RAG(bm25, model=object(), tokenizer=object()).answer("x" * 100_000)
    assert rag.answer("zzzz qqqq?").text == NO_OVERLAP                       # no question word in any source
    off_topic = rag.answer("Who won the football world cup in 1998?")
    assert off_topic.refused
    with pytest.raises(ValueError, match="corpus is empty"):
        BM25Retriever([])

    class Nothing:
        def search(self, query, k):
            return []
    assert GroundedRAG(Nothing()).answer("How do I sleep?").refused        # a retriever over no documents
    with pytest.raises(ValueError, match="threshold must be in"):
        GroundedRAG(bm25, threshold=2)
