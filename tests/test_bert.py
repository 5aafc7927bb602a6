"""Our BERT vs the references: sentence-transformers and HF ``BertModel`` on the real MiniLM weights,
HF ``BertForMaskedLM`` on a random tiny config with the same weights.

Tolerances: fp32 through 6 post-LN layers. Embeddings are unit vectors, so 1e-5 absolute is
~100 ulp of their entries (the acceptance bound); hidden states (|h| up to ~10) use the
fp32 default of ``assert_close`` (rtol 1.3e-6, atol 1e-5) where the same kernels run, and 1e-4 where
PyTorch's fused attention kernel sums in a different order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_lib import pretrained, weights
from course_lib.data import python_docs_text
from course_lib.models.bert import BertConfig, BertForMaskedLM, BertModel
from course_lib.models.sentence_encoder import SentenceEncoder, mean_pooling

SENTENCES = (Path(__file__).resolve().parents[1] / "data" / "bert_sentences.txt").read_text(
    encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def encoder():
    return pretrained.minilm()


@pytest.fixture(scope="module")
def batch(encoder):
    return encoder.tokenizer(SENTENCES[:6] + SENTENCES[30:36])  # English and Chinese, padded


def test_sentences_are_english_and_chinese():
    assert len(SENTENCES) >= 50
    assert sum(any("\u4e00" <= c <= "\u9fff" for c in s) for s in SENTENCES) >= 25
    assert sum(s.isascii() for s in SENTENCES) >= 25


def test_embeddings_equal_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    ref_model = SentenceTransformer(str(weights.minilm_path()), device="cpu")
    texts = SENTENCES + [python_docs_text(3000)[-1500:]]  # one text longer than max_seq_length=256 tokens
    assert len(encoder.tokenizer.tokenize(texts[-1])) > 256
    ref = ref_model.encode(texts, convert_to_tensor=True, batch_size=16)
    ours = encoder.encode(texts, batch_size=16)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    assert torch.nn.functional.cosine_similarity(ours, ref).min() >= 0.99999
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(len(texts)), rtol=0, atol=1e-6)


def test_hidden_states_pooler_and_attentions_equal_hf(encoder, batch):
    from transformers import BertModel as HFBertModel

    ref = HFBertModel.from_pretrained(str(weights.minilm_path()), attn_implementation="eager").eval()
    with torch.no_grad():
        want = ref(**batch, output_attentions=True)
        got = encoder.model(**batch, output_attentions=True)
    real = batch["attention_mask"].bool()  # padded positions are never read downstream
    torch.testing.assert_close(got.last_hidden_state[real], want.last_hidden_state[real])
    torch.testing.assert_close(got.pooler_output, want.pooler_output)
    assert len(got.attentions) == 6 and got.attentions[0].shape == (12, 12, batch["input_ids"].shape[1],
                                                                      batch["input_ids"].shape[1])
    for ours, theirs in zip(got.attentions, want.attentions):
        torch.testing.assert_close(ours.transpose(1, 2)[real], theirs.transpose(1, 2)[real])  # real queries


def test_fast_path_equals_explicit_attention(encoder, batch):
    with torch.no_grad():
        slow = encoder.model(**batch, output_attentions=True).last_hidden_state
        fast = encoder.model(**batch).last_hidden_state
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(fast[real], slow[real], rtol=1e-4, atol=1e-4)


def test_padding_does_not_change_embeddings(encoder):
    alone = torch.cat([encoder.encode([s]) for s in SENTENCES[:4]])
    together = encoder.encode(SENTENCES[:4])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=24, type_vocab_size=2, layer_norm_eps=1e-12)


def test_masked_lm_equals_hf_random_tiny():
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM as HFBertForMaskedLM

    ref = HFBertForMaskedLM(HFBertConfig(**TINY, attn_implementation="eager")).eval()
    with torch.no_grad():
        ref.cls.predictions.bias.normal_()  # HF initialises the bias at zero: make it count
    ours = BertForMaskedLM.from_hf(ref.config, ref.state_dict())
    ids = torch.randint(0, 99, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    types = (torch.arange(11) > 5).long().expand(3, 11)
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, token_type_ids=types, output_attentions=True)
        got = ours(ids, mask, types, output_attentions=True)
    torch.testing.assert_close(got.logits, want.logits)
    for a, b in zip(got.attentions, want.attentions):
        torch.testing.assert_close(a, b)
    assert ours.cls.predictions.word_embeddings[0].weight is ours.bert.embeddings.word_embeddings.weight


def test_mean_pooling_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    torch.testing.assert_close(mean_pooling(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))


def test_bad_input():
    model = BertModel(BertConfig(**TINY))
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 99\)"):
        model(torch.tensor([[1, 99]]))
    with pytest.raises(ValueError, match="learned positions for at most 24"):
        model(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"input_ids must have shape \(B, T\)"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="token_type_ids must lie in"):
        model(torch.zeros(1, 3, dtype=torch.long), token_type_ids=torch.full((1, 3), 2))
    with pytest.raises(ValueError, match="attention_mask must have the shape of input_ids"):
        model(torch.zeros(1, 3, dtype=torch.long), attention_mask=torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        BertConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="hidden_act='relu' \\(supported: 'gelu'\\)"):
        BertConfig.from_hf({"hidden_act": "relu"})
    with pytest.raises(ValueError, match="mean_pooling|need last_hidden_state"):
        mean_pooling(torch.zeros(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="max_seq_length 30 exceeds"):
        SentenceEncoder(model, None, max_seq_length=30)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 99\), got values in \[-1, 0\]"):
        model(torch.tensor([[0, -1]]))


def test_encode_rejects_bad_batch_size(encoder):
    with pytest.raises(ValueError, match="batch_size must be positive"):
        encoder.encode(["hello"], batch_size=0)


def test_untied_mlm_head_is_refused():
    from transformers import BertConfig as HFBertConfig
    from transformers import BertForMaskedLM as HFBertForMaskedLM

    sd = dict(HFBertForMaskedLM(HFBertConfig(**TINY)).state_dict())
    sd["cls.predictions.decoder.weight"] = sd["cls.predictions.decoder.weight"] + 1
    with pytest.raises(ValueError, match="cls.predictions.decoder.weight differs from bert.embeddings"):
        BertForMaskedLM.from_hf(TINY, sd)
