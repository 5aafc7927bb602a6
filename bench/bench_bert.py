"""BERT and GPT benchmarks (COURSE_DESIGN §7): all-MiniLM-L6-v2 sentence embeddings, ours vs sentence-transformers;
tiny GPT training vs HF and decoding with the KV cache vs without.

    python -m bench minilm
    python -m bench gpt_decode

Both run in this process on the same sentences, batch size and threads. "end to end" includes
tokenisation (our pure-Python WordPiece vs HF's Rust tokenizer); "model only" feeds both models the
same padded token ids.
"""

from __future__ import annotations

from pathlib import Path

import torch

from bench.harness import BenchResult, benchmark, interleaved
from course_lib import pretrained, weights
from course_lib.data import python_docs_text

BATCH = 32
ROUNDS = 5  # ours and the reference alternate, so load changes on a shared machine hit both alike


def _interleaved(ours, ref) -> tuple[float, float]:
    t = interleaved({"ours": ours, "reference": ref}, rounds=ROUNDS)
    return t["ours"], t["reference"]


def _sentences(n: int = 512) -> list[str]:
    """Course sentences (EN + ZH) and Python-docs lines of 5–60 words: a realistic length mix."""
    own = (Path(__file__).resolve().parents[1] / "data" / "bert_sentences.txt").read_text(encoding="utf-8").splitlines()
    docs = [line.strip() for line in python_docs_text(200_000).split("\n") if 5 <= len(line.split()) <= 60]
    return (own + docs)[:n]


@benchmark("minilm_embed_end_to_end", "MiniLM sentence embeddings/s incl. tokenisation, ours vs sentence-transformers")
def embed_end_to_end() -> BenchResult:
    from sentence_transformers import SentenceTransformer

    sents = _sentences()
    ours = pretrained.minilm()
    ref = SentenceTransformer(str(weights.minilm_path()), device="cpu")
    with torch.inference_mode():
        t_ours, t_ref = _interleaved(lambda: ours.encode(sents, batch_size=BATCH),
                                     lambda: ref.encode(sents, batch_size=BATCH, convert_to_tensor=True))
    return BenchResult(
        ours=len(sents) / t_ours, reference=len(sents) / t_ref, unit="sentences/s", higher_is_better=True,
        target=1.0, reference_name="sentence-transformers (HF BertModel sdpa + Rust tokenizer)",
        notes=f"{len(sents)} sentences, batch {BATCH}, {torch.get_num_threads()} threads, fp32 CPU")


@benchmark("minilm_model_forward", "MiniLM forward on the same padded batches, ours vs HF BertModel (sdpa)")
def model_forward() -> BenchResult:
    from transformers import BertModel as HFBertModel

    ours = pretrained.minilm()
    ref = HFBertModel.from_pretrained(str(weights.minilm_path()), attn_implementation="sdpa").eval()
    sents = sorted(_sentences(), key=len)
    batches = [ours.tokenizer(sents[i:i + BATCH], max_length=256) for i in range(0, len(sents), BATCH)]
    with torch.inference_mode():
        t_ours, t_ref = _interleaved(lambda: [ours.model(**b) for b in batches], lambda: [ref(**b) for b in batches])
    return BenchResult(
        ours=len(sents) / t_ours, reference=len(sents) / t_ref, unit="sentences/s", higher_is_better=True,
        target=None, reference_name="transformers BertModel, sdpa attention",
        notes="model only (no tokenisation, no pooling)")


@benchmark("gpt_tiny_train_tokens_per_s", "tiny GPT training tokens/s (fwd + bwd + AdamW), ours vs HF GPT2LMHeadModel")
def gpt_tiny_train() -> BenchResult:
    from transformers import GPT2Config, GPT2LMHeadModel

    from course_lib.models.gpt import GPT

    conf = dict(vocab_size=8192, n_positions=128, n_embd=128, n_layer=4, n_head=4)
    torch.manual_seed(0)
    ref = GPT2LMHeadModel(GPT2Config(**conf, bos_token_id=0, eos_token_id=0, attn_implementation="sdpa")).train()
    ours = GPT.from_hf(ref.config, ref.state_dict()).train()
    ids = torch.randint(0, conf["vocab_size"], (16, 128))

    def step_fn(model, loss_of):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            loss = loss_of(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    targets = torch.cat([ids[:, 1:], torch.full((16, 1), -100)], dim=1)  # shift the labels, not the logits

    def our_loss(m):
        logits = m(ids).logits  # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))

    t_ours, t_ref = _interleaved(step_fn(ours, our_loss), step_fn(ref, lambda m: m(ids, labels=ids).loss))
    tokens = ids.numel()
    return BenchResult(
        ours=tokens / t_ours, reference=tokens / t_ref, unit="tokens/s", higher_is_better=True, target=1.0,
        reference_name="transformers GPT2LMHeadModel (sdpa), same weights",
        notes=f"{conf}, batch 16 x 128, dropout 0.1 in both, {torch.get_num_threads()} threads, fp32 CPU")


@benchmark("gpt_decode_cache_vs_recompute", "small GPT greedy decode tokens/s, 128 new tokens: KV cache vs Recompute")
def gpt_decode_cache_vs_recompute() -> BenchResult:
    """``GPT.generate``'s KV cache against ``generation.Recompute`` (its decoder before the cache), same tokens."""
    from course_lib.generation import Recompute, generate
    from course_lib.models.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8192, n_positions=256, n_embd=128, n_layer=4, n_head=4, dropout=0.0)).eval()
    ids, new = torch.randint(0, 8192, (1, 16)), 128
    out = {}
    with torch.inference_mode():
        t = interleaved({"cached": lambda: out.update(cached=generate(model, ids, new)),
                         "recompute": lambda: out.update(recompute=generate(Recompute(model), ids, new))},
                        rounds=ROUNDS)
    assert out["cached"].tolist() == out["recompute"].tolist()
    return BenchResult(
        ours=new / t["cached"], reference=new / t["recompute"], unit="tokens/s", higher_is_better=True, target=None,
        reference_name="the same GPT through generation.Recompute (whole sequence every step, no cache)",
        notes=f"n_embd 128, 4 layers, prompt 16 + {new} new, batch 1, identical greedy tokens, "
              f"{torch.get_num_threads()} threads, fp32 CPU")
