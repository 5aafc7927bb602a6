"""Training and decoding for the encoder–decoder Transformer (chapter 01's task: :mod:`course_lib.tasks.reversal`).

- Optimisation as in Vaswani et al. 2017 §5.3–5.4: Adam (β₁=0.9, β₂=0.98, ε=1e-9) with the
  "Noam" schedule lrate = d_model^-0.5 · min(step^-0.5, step · warmup^-1.5), label smoothing ε_ls = 0.1.
- Decoding: greedy and beam search (length penalty of Wu et al. 2016, GNMT eq. 14).
"""

from __future__ import annotations

import torch

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


def _decode_inputs(model: Transformer, src: torch.Tensor, max_len: int):
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a course_lib.transformer.Transformer, got {type(model).__name__}")
    if src.dim() != 2:
        raise ValueError(f"src must have shape (B, S), got {tuple(src.shape)}")
    if max_len <= 0:
        raise ValueError(f"max_len must be positive, got {max_len}")
    memory, _ = model.encode(src)  # (B, S, d_model)
    return memory, model.src_mask(src)


@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, max_len: int, bos_id: int = BOS,
                  eos_id: int = EOS) -> torch.Tensor:
    """Pick the most likely next token each step; return ``(B, ≤ max_len + 1)`` ids starting with BOS."""
    memory, src_mask = _decode_inputs(model, src, max_len)
    seqs = torch.full((src.shape[0], 1), bos_id, device=src.device)
    finished = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, _, _ = model.decode(seqs, memory, src_mask)  # (B, t, V)
        next_token = logits[:, -1].argmax(-1).masked_fill(finished, model.config.pad_id)  # (B,)
        seqs = torch.cat([seqs, next_token[:, None]], dim=1)
        finished |= next_token == eos_id
        if finished.all():
            break
    return seqs


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, max_len: int, beam_size: int = 4,
                length_penalty: float = 0.6, bos_id: int = BOS, eos_id: int = EOS) -> torch.Tensor:
    """Keep the ``beam_size`` best partial sequences by total log-probability; finished beams extend
    with padding at no cost. The winner maximises score / lp(len), lp = ((5 + len) / 6)^α (GNMT)."""
    if not isinstance(beam_size, int) or beam_size <= 0:
        raise ValueError(f"beam_size must be a positive int, got {beam_size!r}")
    memory, src_mask = _decode_inputs(model, src, max_len)
    b, k, pad = src.shape[0], beam_size, model.config.pad_id
    memory = memory.repeat_interleave(k, dim=0)  # (B·K, S, d_model)
    src_mask = src_mask.repeat_interleave(k, dim=0)
    seqs = torch.full((b * k, 1), bos_id, device=src.device)
    scores = torch.full((b, k), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one so the first step gives k distinct ones
    finished = torch.zeros(b * k, dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        logits, _, _ = model.decode(seqs, memory, src_mask)
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1)  # (B·K, V)
        log_probs[finished] = float("-inf")
        log_probs[finished, pad] = 0.0
        vocab = log_probs.shape[-1]
        candidates = (scores.view(-1, 1) + log_probs).view(b, k * vocab)  # (B, K·V)
        scores, index = candidates.topk(k, dim=-1)  # (B, K)
        parent = (torch.arange(b, device=src.device)[:, None] * k + index // vocab).view(-1)  # (B·K,)
        token = (index % vocab).view(-1)
        seqs = torch.cat([seqs[parent], token[:, None]], dim=1)
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
