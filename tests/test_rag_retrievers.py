"""Dense, hybrid, LLM rerank, grounded answers and evaluation on a tiny corpus (real MiniLM weights)."""

import numpy as np
import pytest
import torch

from course_lib import pretrained
from course_lib.chat import LocalChatModel
from course_lib.models.llama import LlamaConfig, LlamaForCausalLM
from course_lib.rag import (
    RAG,
    BM25Retriever,
    CiteFirst,
    DenseRetriever,
    HybridRetriever,
    LLMReranker,
    Passage,
    RerankRetriever,
    check_citations,
    retrieval_table,
)
from course_lib.rag.answer import REFUSAL
from course_lib.rag.chunking import Chunk
from course_lib.rag.evaluate import choose_threshold
from course_lib.vectordb.hybrid import reciprocal_rank_fusion

TEXTS = {
    "json.dumps": "Serialize obj to a JSON formatted str. If indent is a non-negative integer, JSON array elements "
                  "and object members will be pretty-printed with that indent level.",
    "json.loads": "Deserialize s (a str, bytes or bytearray instance containing a JSON document) to a Python object.",
    "os.path.join": "Join two or more pathname components, inserting '/' as needed.",
    "topic:for": "The for statement is used to iterate over the elements of a sequence. A break statement executed "
                 "in the first suite terminates the loop without executing the else clause.",
    "time.sleep": "Delay execution for a given number of seconds. The argument may be a floating point number.",
    "random.shuffle": "Shuffle list x in place, and return None.",
}
CHUNKS = [Chunk(f"{d}#0", d, d, t, 0) for d, t in TEXTS.items()]
QUESTIONS = [{"question": "How do I pretty-print JSON with indentation?", "passages": ["json.dumps"]},
             {"question": "parse a JSON string into a Python object", "passages": ["json.loads"]},
             {"question": "How can I pause my program for two seconds?", "passages": ["time.sleep"]},
             {"question": "What is the capital of France?", "passages": []}]


@pytest.fixture(scope="module")
def encoder():
    return pretrained.minilm()


@pytest.fixture(scope="module")
def dense(encoder):
    return DenseRetriever(CHUNKS, encoder, progress=False)


@pytest.fixture(scope="module")
def tiny_llm(smollm2_bpe):
    # SmolLM2's tokenizer with a tiny random LLaMA of the same vocabulary: batching and streaming are
    # properties of the decoding code, not of the weights, and the real model takes a minute to load
    # on a loaded 2-core machine (the notebook uses the real one)
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=8)
    return LlamaForCausalLM(config).eval(), smollm2_bpe


def test_dense_scores_are_minilm_cosines(dense, encoder):
    q = "How do I pretty-print JSON with indentation?"
    e = encoder.encode([q] + [c.text for c in CHUNKS])                  # (7, 384) unit rows
    cos = (e[1:] @ e[0]).numpy()
    np.testing.assert_allclose(dense.score_all(q), cos, atol=1e-5)      # fp32 batched vs one-by-one BERT
    hits = dense.search(q, 3)
    assert [h.id for h in hits] == [CHUNKS[i].id for i in np.argsort(-cos)[:3]]
    np.testing.assert_allclose([h.score for h in hits], np.sort(cos)[::-1][:3], atol=1e-5)
    assert hits[0].doc_id == "json.dumps"
    assert len(dense.search(q, 50)) == len(CHUNKS)


def test_embedding_cache_roundtrip(tmp_path, encoder):
    from course_lib.rag.dense import embed_texts

    texts = ["a short text", "another one"]
    first = embed_texts(encoder, texts, progress=False, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(embed_texts(None, texts, cache_dir=tmp_path), first)   # read back, no encoder


def test_hybrid_is_rrf_of_the_two_rankings(dense):
    bm25 = BM25Retriever(CHUNKS)
    hybrid = HybridRetriever([bm25, dense], candidates=5)
    q = "JSON string to Python object"
    fused = reciprocal_rank_fusion([[p.id for p in bm25.search(q, 5)], [p.id for p in dense.search(q, 5)]], k=60)
    hits = hybrid.search(q, 4)
    assert [(h.id, h.score) for h in hits] == [(i, pytest.approx(s)) for i, s in fused[:4]]
    assert hits[0].doc_id == "json.loads"


def test_reranker_batched_equals_one_by_one(tiny_llm):
    model, tok = tiny_llm
    rr = LLMReranker(model, tok, batch_size=3, max_passage_tokens=40)
    q = "How do I pretty-print JSON?"
    texts = [c.text for c in CHUNKS[:3]]
    batched = rr.score(q, texts)                          # one left-padded batch of 3 prompts
    alone = []
    for t in texts:                                       # each prompt alone, unpadded, full forward
        ids = torch.tensor([rr.prompt_ids(q, t)])
        with torch.no_grad():
            z = model(ids).logits[0, -1]
        alone.append(float(torch.sigmoid(z[rr.yes] - z[rr.no])))
    # padding changes only masked positions; fp32 sums over different shapes differ in the last bits
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert len({len(rr.prompt_ids(q, t)) for t in texts}) > 1      # the batch really was padded
    rerank = RerankRetriever(BM25Retriever(CHUNKS), rr, candidates=3)
    hits = rerank.search("JSON", 2)
    assert all(0 <= h.score <= 1 for h in hits) and hits[0].score >= hits[1].score


def _reply(model, tok, messages, n, constraint=None) -> str:
    return LocalChatModel(model, tok, constraint=constraint).chat(messages, max_tokens=n).content.strip()


def _streamed(model, tok, messages, n, constraint=None) -> str:
    return "".join(LocalChatModel(model, tok, constraint=constraint).stream(messages, max_tokens=n)).strip()


def test_rag_stream_equals_answer(tiny_llm):
    model, tok = tiny_llm
    pipe = RAG(_Fixed(1.0), model, tok, max_new_tokens=8, cite_first=False)
    done = pipe.answer("Say hello.")
    assert "".join(pipe.stream("Say hello.")).strip() == done.text
    assert 0 < done.new_tokens <= 8 and done.seconds["generate"] > 0


def test_cite_first_opens_every_reply_with_a_source_number(tiny_llm):
    model, tok = tiny_llm
    messages = [{"role": "user", "content": "Sources: [1] a [2] b\n\nQuestion: which?"}]
    free = _reply(model, tok, messages, 6)
    assert not free.startswith("[")                                      # random weights never cite by themselves
    for n in (1, 2, 3):
        forced = _reply(model, tok, messages, 6, constraint=lambda m, t, n=n: CiteFirst(tok, n))
        assert forced[0] == "[" and forced[2] == "]" and 1 <= int(forced[1]) <= n, forced
        assert _streamed(model, tok, messages, 6, constraint=lambda m, t, n=n: CiteFirst(tok, n)) == forced
    proc = CiteFirst(tok, 2)
    logits = torch.zeros(1, tok.vocab_size)
    allowed = [torch.isfinite(proc(torch.zeros(1, 5 + step, dtype=torch.long), logits)[0]).nonzero().ravel().tolist()
               for step in range(4)]
    assert allowed[0] == tok.encode_ordinary("[") and allowed[1] == tok.encode_ordinary("1") + tok.encode_ordinary("2")
    assert tok.encode_ordinary("]") == [i for i in allowed[2] if tok.decode([i]) == "]"] and len(allowed[3]) == tok.vocab_size
    assert all(tok.decode([i]).startswith("]") for i in allowed[2])
    for bad in (0, 10, True, 2.0):
        with pytest.raises(ValueError, match="n_sources must be an int in"):
            CiteFirst(tok, bad)


def test_rag_cites_first_unless_told_not_to(tiny_llm):
    model, tok = tiny_llm
    passages = [Passage("a#0", "a", "a", "text", 1.0)]
    assert RAG(_Fixed(1.0), model, tok, cite_first=False).constraint(passages) is None
    factory = RAG(_Fixed(1.0), model, tok, max_new_tokens=4).constraint(passages)
    assert isinstance(factory([], None), CiteFirst) and factory([], None) is not factory([], None)
    ans = RAG(_Fixed(1.0), model, tok, max_new_tokens=4).answer("What is the text?")
    assert ans.text.startswith("[1]") and ans.citations.cited == [1]


def test_citation_check():
    sources = [Passage("a#0", "a", "a", "json.dumps serializes an object to a JSON formatted string.", 1.0),
               Passage("b#0", "b", "b", "time.sleep delays execution for some seconds.", 0.5)]
    good = check_citations("Use json.dumps to serialize an object to a JSON string [1].", sources)
    assert good.ok and good.cited == [1] and good.recall == good.precision == 1.0
    wrong_source = check_citations("Use json.dumps to serialize an object to a JSON string [2].", sources)
    assert not wrong_source.ok and wrong_source.unsupported[0][0] == 2 and wrong_source.precision == 0.0
    invalid = check_citations("It serializes objects [3].", sources)
    assert not invalid.ok and invalid.invalid == [3]
    assert not check_citations("No citation at all.", sources).ok
    both = check_citations("JSON formatted string [1]. Execution delays for seconds [1, 2].", sources)
    assert both.cited == [1, 2] and not both.ok and both.unsupported == [(1, "Execution delays for seconds [1, 2].")]
    # q127's defect: one cited sentence used to make the whole answer pass, an uncited false one beside it
    q127 = check_citations("Serialize an object to a JSON formatted string [1]. The size of an object in bytes is "
                           "4 bytes.", sources)
    assert not q127.ok and q127.uncited == ["The size of an object in bytes is 4 bytes."] and q127.recall == 0.5


class _Fixed:
    def __init__(self, score):
        self.score = score

    def search(self, query, k):
        return [Passage("a#0", "a", "a", "text", self.score)][:k]


def test_refusal_below_threshold_without_generating():
    pipe = RAG(_Fixed(0.1), model=object(), tokenizer=object(), threshold=0.3)   # the model is never called
    ans = pipe.answer("What is the capital of France?")
    assert ans.refused and ans.text == REFUSAL and ans.citations is None
    assert list(pipe.stream("What is the capital of France?")) == [REFUSAL]
    assert choose_threshold([0.8, 0.6, 0.7], [0.2, 0.55]) == pytest.approx(0.575)
    assert choose_threshold([0.8, 0.6, 0.5], [0.2, 0.55]) == pytest.approx(0.35)   # tie: refuse less


def test_retrieval_table(dense):
    table = retrieval_table({"BM25": BM25Retriever(CHUNKS), "dense": dense}, QUESTIONS, k=5,
                            corpus_doc_ids=TEXTS, progress=False)
    assert set(table) == {"BM25", "dense"}
    assert table["dense"]["recall@5"] == 1.0 and table["dense"]["MRR"] == 1.0
    assert set(table["BM25"]) == {"recall@1", "recall@5", "recall@10", "MRR", "nDCG@10"}


def test_bad_input(dense):
    with pytest.raises(ValueError, match="corpus is empty"):
        DenseRetriever([], encoder=object())
    with pytest.raises(ValueError, match="non-empty string"):
        dense.search("  \t", 3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        HybridRetriever([dense]).search("json", -1)
    with pytest.raises(ValueError, match="missing from the corpus"):
        retrieval_table({"dense": dense}, [{"question": "q", "passages": ["nope.nothing"]}], corpus_doc_ids=TEXTS)
    with pytest.raises(ValueError, match="no answerable question"):
        retrieval_table({"dense": dense}, QUESTIONS[-1:])
    with pytest.raises(ValueError, match="retrievers must be"):
        HybridRetriever([])
    with pytest.raises(ValueError, match="non-empty string"):
        RAG(_Fixed(1.0), model=object(), tokenizer=object()).answer("")


def test_inspector_html_marks_query_terms(dense):
    from course_lib.viz.rag import highlight, inspect_html, inspector

    assert highlight("Use json.dumps <b>", {"json"}) == "Use <mark>json</mark>.dumps &lt;b&gt;"
    bm25 = BM25Retriever(CHUNKS)
    page = inspect_html("pretty-print JSON", bm25, dense, HybridRetriever([bm25, dense]), k=3)
    assert page.count("<tr>") == 4 and "<mark>JSON</mark>" in page and "json.dumps#0" in page
    w = inspector(bm25, dense, HybridRetriever([bm25, dense]), query="JSON", k=2)
    w.children[0].value = "sleep seconds"                 # typing a new query refreshes the table
    assert "time.sleep#0" in w.children[1].value
    static = w._repr_mimebundle_()  # a viewer without widgets (GitHub) shows the table of the current query
    assert "application/vnd.jupyter.widget-view+json" in static
    assert "sleep seconds" in static["text/html"] and "time.sleep#0" in static["text/html"]
