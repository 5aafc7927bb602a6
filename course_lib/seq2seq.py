"""Training and decoding for the encoder–decoder Transformer (chapter 01's task: :mod:`course_lib.tasks.reversal`).

- Optimisation as in Vaswani et al. 2017 §5.3–5.4: Adam (β₁=0.9, β₂=0.98, ε=1e-9) with the
  "Noam" schedule lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), label smoothing ε_ls = 0.1.
- Decoding: greedy (``generation.generate`` on the :func:`as_decoder` adapter) and beam search
  (length penalty of Wu et al. 2016, GNMT eq. 14) over the same adapter's ``decode_step``.
"""

from __future__ import annotations

import torch

from course_lib import generation
from course_lib.transformer import Transformer

PAD, BOS, EOS = 0, 1, 2  # special ids of the course's seq2seq vocabularies (the defaults below)


def label_smoothing_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.1,
                         ignore_index: int = PAD) -> torch.Tensor:
    """Cross-entropy against q = (1 − ε)·onehot(y) + ε/V (Szegedy et al. 2016; Vaswani §5.4).

    loss = (1 − ε)·(−log p_y) + ε·mean_k(−log p_k), averaged over positions whose target is not
    ``ignore_index``; the same definition as ``F.cross_entropy(..., label_smoothing=ε)``.
    """
    if logits.dim() != target.dim() + 1 or logits.shape[:-1] != target.shape:
        raise ValueError(f"logits (..., V) and target (...) disagree: {tuple(logits.shape)} vs {tuple(target.shape)}")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (..., V)
    keep = target != ignore_index
    nll = -log_probs.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # (...)
    uniform = -log_probs.mean(dim=-1)  # (...)
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    return loss[keep].sum() / keep.sum().clamp_min(1)


def noam_lambda(d_model: int, warmup: int, factor: float = 1.0):
    """step ↦ factor · d_model^-0.5 · min(step^-0.5, step · warmup^-1.5) (steps counted from 1).

    Use with ``torch.optim.lr_scheduler.LambdaLR`` on an optimizer whose base lr is 1.0.
    """
    if d_model <= 0 or warmup <= 0 or factor <= 0:
        raise ValueError(f"d_model, warmup and factor must be positive, got {d_model}, {warmup}, {factor}")
    return lambda step: factor * d_model ** -0.5 * min((step + 1) ** -0.5, (step + 1) * warmup ** -1.5)


class TransformerDecoder(generation.Recompute):
    """:class:`course_lib.generation.Decoder` over the Transformer's decoder with the encoder memory fixed.

    Built by :func:`as_decoder` (the pattern of T5's ``as_decoder``): the encoder runs once; as in
    :class:`~course_lib.generation.Recompute` the cache is the decoder token history ``(B, t)`` and each
    step re-runs ``model.decode`` over it (sinusoidal positions, causal + padding mask), so outputs
    equal the plain "append and rerun" loop.
    """

    def __init__(self, model: Transformer, memory: torch.Tensor, src_mask: torch.Tensor):
        super().__init__(model)
        self.memory, self.src_mask = memory, src_mask  # (B, S, d_model), (B, 1, 1, S)

    def new_cache(self, batch_size: int, max_len: int) -> None:
        """No cache yet: the first step's ``input_ids`` start the history."""
        if batch_size != self.memory.shape[0]:
            raise ValueError(f"batch_size {batch_size} differs from the encoded batch {self.memory.shape[0]}")
        return None

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Target ids ``(B, t)`` → logits ``(B, t, V)`` against the fixed memory."""
        return self.model.decode(ids, self.memory, self.src_mask)[0]

    def repeat_interleave(self, k: int) -> TransformerDecoder:
        """The same decoder for ``k`` beams per source row (memory and mask rows repeated, B → B·k)."""
        return TransformerDecoder(self.model, self.memory.repeat_interleave(k, dim=0),
                                  self.src_mask.repeat_interleave(k, dim=0))

    @staticmethod
    def reorder_cache(cache: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rows of the cache follow their beams: row i becomes row ``index[i]`` (HF ``_reorder_cache``)."""
        return cache.index_select(0, index)


@torch.no_grad()
def as_decoder(model: Transformer, src: torch.Tensor) -> TransformerDecoder:
    """The decoder as a :class:`course_lib.generation.Decoder`, the encoder run once on ``src`` ``(B, S)``."""
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a course_lib.transformer.Transformer, got {type(model).__name__}")
    if not isinstance(src, torch.Tensor) or src.dim() != 2:
        raise ValueError(f"src must have shape (B, S), got {tuple(getattr(src, 'shape', ()))}")
    memory, _ = model.encode(src)  # (B, S, d_model), fixed while decoding
    return TransformerDecoder(model, memory, model.src_mask(src))


def _check_max_len(max_len: int) -> None:
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len <= 0:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")


@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, max_len: int, bos_id: int = BOS,
                  eos_id: int = EOS) -> torch.Tensor:
    """Pick the most likely next token each step; return ``(B, ≤ max_len + 1)`` ids starting with BOS.

    Runs :func:`course_lib.generation.generate` (greedy) on :func:`as_decoder`; rows that produced
    EOS continue with padding until every row has.
    """
    _check_max_len(max_len)
    decoder = as_decoder(model, src)
    start = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    return generation.generate(decoder, start, max_len, stop_tokens=(eos_id,), pad_token_id=model.config.pad_id)


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, max_len: int, beam_size: int = 4,
                length_penalty: float = 0.6, bos_id: int = BOS, eos_id: int = EOS) -> torch.Tensor:
    """Keep the ``beam_size`` best partial sequences by total log-probability; finished beams extend
    with padding at no cost. The winner maximises score / lp(len), lp = ((5 + len) / 6)^α (GNMT).

    Each step runs the :func:`as_decoder` adapter's ``decode_step`` on the B·K beams; the cache rows
    follow the surviving beams through ``reorder_cache``.
    """
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size <= 0:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    _check_max_len(max_len)
    b, k, pad = src.shape[0], beam_size, model.config.pad_id
    decoder = as_decoder(model, src).repeat_interleave(k)  # B·K rows of memory
    seqs = torch.full((b * k, 1), bos_id, dtype=torch.long, device=src.device)  # (B·K, 1)
    cache, step_ids = decoder.new_cache(b * k, max_len + 1), seqs
    scores = torch.full((b, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one so the first step gives k distinct ones
    finished = torch.zeros(b * k, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, cache = decoder.decode_step(step_ids, cache)  # (B·K, V)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B·K, V)
        log_probs[finished] = float("-inf")
        log_probs[finished, pad] = 0.0
        vocab = log_probs.shape[-1]
        candidates = (scores.view(-1, 1) + log_probs).view(b, k * vocab)  # (B, K·V)
        scores, index = candidates.topk(k, dim=-1)  # (B, K)
        parent = (torch.arange(b, device=src.device)[:, None] * k + index // vocab).view(-1)  # (B·K,)
        token = (index % vocab).view(-1)
        seqs = torch.cat([seqs[parent], token[:, None]], dim=1)
        cache, step_ids = decoder.reorder_cache(cache, parent), token[:, None]
        finished = finished[parent] | (token == eos_id)
        if finished.all():
            break
    lengths = (seqs[:, 1:] != pad).sum(-1).view(b, k).float()
    best = (scores / ((5.0 + lengths) / 6.0) ** length_penalty).argmax(-1)  # (B,)
    return seqs.view(b, k, -1)[torch.arange(b, device=src.device), best]


def strip_special(seqs: torch.Tensor, eos_id: int = EOS) -> list[list[int]]:
    """Decoded ``(B, T)`` ids → per row the tokens after BOS up to (not including) the first EOS."""
    out = []
    for row in seqs[:, 1:].tolist():
        out.append(row[: row.index(eos_id)] if eos_id in row else row)
    return out


def exact_match(model: Transformer, src: torch.Tensor, tgt: torch.Tensor, beam_size: int = 1) -> float:
    """Fraction of rows whose decoded output equals the target exactly (greedy when ``beam_size`` is 1)."""
    model.eval()
    max_len = tgt.shape[1]
    pred = greedy_decode(model, src, max_len) if beam_size == 1 else beam_search(model, src, max_len, beam_size)
    truth = strip_special(tgt)
    return sum(p == t for p, t in zip(strip_special(pred), truth)) / len(truth)


def seq2seq_loss(model: Transformer, batch: tuple[torch.Tensor, torch.Tensor], smoothing: float = 0.1) -> torch.Tensor:
    """Teacher forcing: feed ``tgt[:, :-1]``, predict ``tgt[:, 1:]`` with label smoothing."""
    src, tgt = batch
    logits = model(src, tgt[:, :-1]).logits  # (B, T-1, V)
    return label_smoothing_loss(logits, tgt[:, 1:], smoothing, ignore_index=model.config.pad_id)
