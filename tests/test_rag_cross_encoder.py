"""The MiniLM cross-encoder reranker: forward equal to sentence-transformers' CrossEncoder on the same
weights, the shipped file matches its recorded sha256, training never sees a test question, a tiny
training run works end to end, and bad input gets a clear error or an empty result.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import rag
from course_lib.rag.cross_encoder import (
    RERANKER_DIR,
    CrossEncoderReranker,
    CrossEncoderRetriever,
    base_cross_encoder,
    encode_pairs,
    file_sha256,
)
from course_lib.rag.types import Passage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import train_reranker  # noqa: E402

QUESTION = "How do I turn a Python dict into a JSON string?"
PASSAGES = ["json.dumps\nSerialize ``obj`` to a JSON formatted ``str``.",
            "os.walk\nDirectory tree generator. For each directory in the directory tree rooted at top, "
            "yields a 3-tuple dirpath, dirnames, filenames.",
            "collections.OrderedDict\nDictionary that remembers insertion order " * 30]   # longer than max_length


@pytest.fixture(scope="module")
def shipped() -> CrossEncoderReranker:
    return CrossEncoderReranker.load()


class _Fixed:
    """A first stage that returns the given passages."""

    def __init__(self, hits):
        self.hits = hits

    def search(self, query, k=10):
        return self.hits[:k]


def test_forward_equals_sentence_transformers_cross_encoder(shipped, tmp_path):
    """Same weights in HF ``BertForSequenceClassification`` run by sentence-transformers' CrossEncoder: same logits."""
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    from course_lib import weights

    hf = BertForSequenceClassification(BertConfig(**weights.minilm_config(), num_labels=1))
    missing, unexpected = hf.load_state_dict(shipped.model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith("position_ids") for k in missing)
    hf.save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(weights.minilm_path() / name, tmp_path / name)
    ref = CrossEncoder(str(tmp_path), max_length=shipped.max_length, activation_fn=torch.nn.Identity(), device="cpu")
    expected = ref.predict([(QUESTION, p) for p in PASSAGES], batch_size=2)
    ours = shipped.score(QUESTION, PASSAGES)
    np.testing.assert_allclose(ours, expected, atol=1e-4, rtol=0)
    assert ours[0] != ours[1]


def test_pairs_are_cls_question_sep_passage_sep():
    from course_lib.rag.chunking import minilm_tokenizer

    tok = minilm_tokenizer()
    ids, mask, types = encode_pairs(tok, "to a file", ["write here", "a much longer passage here"], 64)
    assert ids.shape == mask.shape == types.shape == (2, 11)                 # 1 + 3 + 1 + 5 + 1
    assert [tok.id_to_token[i] for i in ids[0, :8].tolist()] == ["[CLS]", "to", "a", "file", "[SEP]", "write", "here",
                                                                  "[SEP]"]
    assert types[0].tolist() == [0] * 5 + [1] * 3 + [0] * 3 and mask[0].tolist() == [1] * 8 + [0] * 3
    assert ids[0, 8:].tolist() == [tok.pad_id] * 3 and mask[1].tolist() == [1] * 11


def test_shipped_file_matches_recorded_config():
    config = json.loads((RERANKER_DIR / "config.json").read_text())
    file = RERANKER_DIR / config["weights_file"]
    assert file_sha256(file) == config["weights_sha256"]
    assert file.stat().st_size <= 8 * 2**20
    from safetensors.torch import load_file

    tensors = load_file(file)
    assert {t.dtype for t in tensors.values()} == {torch.float16}
    assert all(k.startswith(tuple(config["trained_tensors"])) for k in tensors)
    assert config["data"]["test_ids_used"] == 0
    curve = json.loads((RERANKER_DIR / "loss_curve.json").read_text())["step_loss"]
    assert len(curve) == config["train"]["steps"] and np.mean(curve[-10:]) < np.mean(curve[:10])


def test_load_rejects_a_changed_file(tmp_path):
    for name in ("config.json", "loss_curve.json"):
        shutil.copy(RERANKER_DIR / name, tmp_path / name)
    data = bytearray((RERANKER_DIR / "weights.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        CrossEncoderReranker.load(tmp_path)


def test_shipped_reranker_prefers_the_answering_passage(shipped):
    scores = shipped.score(QUESTION, PASSAGES[:2])
    assert scores[0] > scores[1] + 1.0


def test_trained_weights_differ_from_the_base(shipped):
    """The shipped tensors were trained: the top layer differs from all-MiniLM-L6-v2's."""
    base = base_cross_encoder().state_dict()
    name = "bert.encoder.layer.5.output.dense.weight"
    assert (shipped.model.state_dict()[name] - base[name]).abs().max() > 1e-3


def test_retriever_reorders_the_first_stage_and_keeps_k(shipped):
    hits = [Passage(f"d{i}#0", f"d{i}", t.split("\n")[0], t.split("\n", 1)[1], 1.0 / (i + 1))
            for i, t in enumerate(PASSAGES[::-1])]
    out = CrossEncoderRetriever(_Fixed(hits), shipped, candidates=3).search(QUESTION, 2)
    assert [p.doc_id for p in out][0] == "d2" and len(out) == 2            # json.dumps was last
    assert out[0].score >= out[1].score


def test_bad_input(shipped):
    retriever = CrossEncoderRetriever(_Fixed([]), shipped)
    with pytest.raises(ValueError, match="query"):
        retriever.search("   ", 3)
    with pytest.raises(ValueError, match="k must be"):
        retriever.search(QUESTION, 0)
    with pytest.raises(ValueError, match="k must be"):
        retriever.search(QUESTION, -2)
    assert retriever.search(QUESTION, 3) == []                              # no candidates: empty result
    assert shipped.score(QUESTION, []).shape == (0,)
    with pytest.raises(TypeError, match="passages"):
        shipped.score(QUESTION, "one string")
    with pytest.raises(ValueError, match="query"):
        shipped.score("", PASSAGES)
    with pytest.raises(ValueError, match="rank_weight"):
        CrossEncoderRetriever(_Fixed([]), shipped, rank_weight=-1)
    with pytest.raises(ValueError, match="pooler"):
        from course_lib.models.bert import BertConfig, BertModel
        from course_lib.rag.cross_encoder import CrossEncoder
        CrossEncoder(BertModel(BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=16), add_pooling_layer=False))


def test_training_questions_never_hold_a_test_id_or_test_document():
    docs = rag.load_corpus(("topics", "stdlib"))
    test = rag.load_questions("test")
    exclude = {p for q in test for p in q.passages}
    synthetic = train_reranker.synthetic_questions(docs, exclude, 300, random.Random(0))
    assert len(synthetic) == 300
    assert not {q["passages"][0] for q in synthetic} & exclude
    assert not {q["id"] for q in synthetic} & {q.id for q in test}
    assert len({q["question"] for q in synthetic}) > 250                     # templated, yet varied


def test_first_sentence_skips_signatures_and_headings():
    assert train_reranker.first_sentence("dumps(obj, *, indent=None)\n\nSerialize obj to a JSON formatted str. More.") \
        == "Serialize obj to a JSON formatted str"
    assert train_reranker.first_sentence('The "with" statement\n********************\n\nThe "with" statement is '
                                         'used to wrap the execution of a block.') \
        == 'The "with" statement is used to wrap the execution of a block'
    assert train_reranker.first_sentence("Short.") is None


def test_tiny_training_run(tmp_path):
    """The script end to end on the json module's docstrings: writes weights, config and curve; they load."""
    config = train_reranker.main(["--modules", "json", "--synthetic", "3", "--epochs", "1", "--negatives", "2",
                                  "--candidates", "5", "--max-length", "64", "--out", str(tmp_path)])
    assert config["data"]["dev_train"] >= 2 and config["data"]["synthetic"] == 3
    assert config["weights_sha256"] == file_sha256(tmp_path / "weights.safetensors")
    assert len(json.loads((tmp_path / "loss_curve.json").read_text())["step_loss"]) == config["train"]["steps"] > 0
    reranker = CrossEncoderReranker.load(tmp_path)
    assert reranker.score(QUESTION, PASSAGES[:2]).shape == (2,)
