"""Corpus loaders and chunking: ids, the 256-token limit, overlap, structure kept whole, bad input."""

import pytest

from course_lib.rag.chunking import (
    MAX_TOKENS,
    blocks,
    count_tokens,
    fixed_chunks,
    minilm_tokenizer,
    structured_chunks,
)
from course_lib.rag.documents import (
    Document,
    check_documents,
    load_corpus,
    notebook_prose,
    python_topics,
    stdlib_docs,
)

PROSE = " ".join(f"Sentence number {i} talks about json.dumps and pathlib.Path objects." for i in range(80))
DOC = Document("d", "Title", "test", "# Heading one\n\nFirst paragraph about lists.\n\n"
               "    def f(x):\n        return x\n\n    print(f(1))\n\nSecond paragraph.\n\n"
               "```python\na = 1\n\nb = 2\n```\n\n## Heading two\n\nLast words.")


def test_loaders_ids_and_sources():
    topics = python_topics()
    assert len(topics) > 70 and topics[0].id.startswith("topic:") and {d.source for d in topics} == {"topics"}
    assert "topic:assert" in {d.id for d in topics}
    docs = stdlib_docs(["json"])
    assert "json.dumps" in {d.id for d in docs} and all(d.title == d.id for d in docs)
    nb = notebook_prose()
    assert nb and all(d.id.startswith("nb:") and "#" in d.id for d in nb)
    corpus = load_corpus(("topics", "stdlib"), limit=3)
    assert [d.source for d in corpus] == ["topics"] * 3 + ["stdlib"] * 3


def test_count_tokens_matches_the_tokenizer():
    for text in [PROSE, DOC.text, "x"]:
        assert count_tokens(text) == len(minilm_tokenizer().encode(text, truncation=False).input_ids)


@pytest.mark.parametrize("size,overlap", [(256, 32), (64, 16), (32, 0)])
def test_fixed_windows_fit_and_overlap(size, overlap):
    doc = Document("p", "prose", "test", PROSE + " " + "x" * 500 + " end")   # one 500-char word: one [UNK]
    chunks = fixed_chunks([doc], size=size, overlap=overlap)
    assert len(chunks) > 1 and all(c.n_tokens <= size for c in chunks)
    assert [c.id for c in chunks] == [f"p#{i}" for i in range(len(chunks))]
    for a, b in zip(chunks, chunks[1:]):
        assert a.text in doc.text and b.text in doc.text                 # verbatim slices
        start_b = doc.text.index(b.text, doc.text.index(a.text))
        end_a = doc.text.index(a.text) + len(a.text)
        shared = doc.text[start_b:end_a]
        n_shared = count_tokens(shared) - 2 if start_b < end_a else 0
        assert overlap - 8 <= n_shared <= overlap     # words are up to ~8 tokens ("json.dumps" = 3)
    assert chunks[-1].text.endswith("end")


def test_structure_kept_whole():
    bs = blocks(DOC.text)
    assert "    def f(x):\n        return x\n\n    print(f(1))" in bs          # indented code with a blank line
    assert "```python\na = 1\n\nb = 2\n```" in bs                             # fenced code with a blank line
    chunks = structured_chunks([DOC], size=MAX_TOKENS)
    assert [c.text.split("\n")[0] for c in chunks] == ["# Heading one", "## Heading two"]   # headings start chunks
    small = structured_chunks([DOC], size=24, overlap=4)
    assert all(c.n_tokens <= 24 for c in small)
    assert any(c.text == "```python\na = 1\n\nb = 2\n```" for c in small)


def test_real_corpus_never_exceeds_256_tokens():
    docs = python_topics()[:20]
    for chunks in (structured_chunks(docs), fixed_chunks(docs)):
        assert max(c.n_tokens for c in chunks) <= MAX_TOKENS
        assert {c.doc_id for c in chunks} == {d.id for d in docs}


def test_bad_input():
    with pytest.raises(ValueError, match="corpus is empty"):
        check_documents([])
    with pytest.raises(ValueError, match="has no text"):
        fixed_chunks([Document("e", "empty", "test", "  \n")])
    with pytest.raises(ValueError, match="appears twice"):
        structured_chunks([DOC, DOC])
    with pytest.raises(ValueError, match="size must be an int in"):
        fixed_chunks([DOC], size=512)
    with pytest.raises(ValueError, match="overlap must be"):
        fixed_chunks([DOC], size=64, overlap=64)
    with pytest.raises(ValueError, match="sources must be"):
        load_corpus(("wikipedia",))
    with pytest.raises(ValueError, match="limit must be"):
        load_corpus(limit=0)
