"""Multi-token prediction, MTP (DeepSeek-V3 §2.2) and self-speculative decoding with its first module.

D sequential modules; module k predicts token t_{i+k+1} from the previous depth's state at i and
the embedding of t_{i+k} (the main model is depth 0):

    h'^k_i = M_k [RMSNorm(Emb(t_{i+k})); RMSNorm(h^{k-1}_i)]      (concat order of the released weights)
    h^k_{1:T-k} = TRM_k(h'^k_{1:T-k})
    P^k_{i+k+1} = OutHead(RMSNorm(h^k_i))                          (Emb and OutHead shared with the main model)
    L_MTP = λ/D · Σ_k CrossEntropy(P^k, t)

The paper writes [RMSNorm(h); RMSNorm(Emb)]; the released checkpoint's ``eh_proj`` takes [emb; h].
Names follow the released checkpoint's MTP layer (``enorm``, ``hnorm``, ``eh_proj``,
``shared_head.norm`` → ``norm`` here, the decoder-layer weights → ``block.*``).

At inference the first module drafts the token after next; the main model verifies it on its next
pass (greedy: accept if the main model would have produced the same token), so one pass can
yield two tokens. The paper reports 85–90 % acceptance and 1.8× tokens/s at DeepSeek-V3 scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.generation import Recompute, generate, sample_next_token
from course_lib.layers import RMSNorm


class MTPModule(nn.Module):
    """One MTP depth: norms, projection M_k of the concatenation, and a Transformer block TRM_k."""

    def __init__(self, hidden_size: int, block: nn.Module, eps: float = 1e-6):
        super().__init__()
        if not isinstance(block, nn.Module):
            raise TypeError(f"block must be an nn.Module (a decoder layer), got {type(block).__name__}")
        self.enorm = RMSNorm(hidden_size, eps)
        self.hnorm = RMSNorm(hidden_size, eps)
        self.eh_proj = nn.Linear(2 * hidden_size, hidden_size, bias=False)  # M_k
        self.block = block  # returns (hidden, attention weights or None)
        self.norm = RMSNorm(hidden_size, eps)  # applied before the shared output head

    def forward(self, h_prev: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """``h_prev`` ``(B, T, d)`` states of depth k−1 at i, ``emb`` ``(B, T, d)`` embeddings of t_{i+k} → h^k ``(B, T, d)``."""
        if h_prev.shape != emb.shape or h_prev.dim() != 3:
            raise ValueError(f"h_prev and emb must both be (B, T, d); got {tuple(h_prev.shape)} and {tuple(emb.shape)}")
        x = self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(h_prev)], dim=-1))  # (B, T, d)
        return self.block(x)[0]


@dataclass
class SpeculativeResult:
    """Self-speculative decoding's tokens, drafts proposed and accepted, main-model passes and time."""
    tokens: torch.Tensor  # (1, P + new) prompt and generated tokens, identical to greedy decoding
    drafted: int          # draft tokens proposed by the MTP module
    accepted: int         # drafts the main model confirmed
    passes: int           # forward passes of the main model
    seconds: float        # wall-clock time

    @property
    def acceptance_rate(self) -> float:
        """Accepted drafts / proposed drafts."""
        return self.accepted / self.drafted if self.drafted else 0.0


def _check_prompt(prompt: torch.Tensor, max_new_tokens: int) -> None:
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 2 or prompt.shape[0] != 1 or prompt.dtype != torch.long:
        raise ValueError(f"prompt must be a LongTensor of shape (1, P), got {getattr(prompt, 'shape', type(prompt).__name__)}")
    if not isinstance(max_new_tokens, int) or max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")


@torch.no_grad()
def greedy_generate(model, prompt: torch.Tensor, max_new_tokens: int) -> SpeculativeResult:
    """Plain greedy decoding, one main pass per token (full recompute, the baseline for the speed-up)."""
    _check_prompt(prompt, max_new_tokens)
    start = time.perf_counter()
    seq = generate(Recompute(model), prompt, max_new_tokens)  # (1, P + new)
    return SpeculativeResult(seq, 0, 0, max_new_tokens, time.perf_counter() - start)


@torch.no_grad()
def self_speculative_generate(model, prompt: torch.Tensor, max_new_tokens: int) -> SpeculativeResult:
    """Greedy decoding where MTP module 1 drafts one extra token per main pass (same output as greedy).

    Every pass recomputes the whole sequence (no KV cache) so the bookkeeping stays visible:
    a pass verifies the pending draft (its prediction at the draft's position must equal the draft),
    appends the main model's next token, then MTP drafts the one after it from the last hidden state.
    """
    _check_prompt(prompt, max_new_tokens)
    if len(getattr(model, "mtp", ())) == 0:
        raise ValueError("self-speculative decoding needs a model with at least one MTP module")
    start = time.perf_counter()
    seq, target = prompt, prompt.shape[1] + max_new_tokens
    drafted = accepted = passes = 0
    pending = False
    while True:
        out = model(seq)
        passes += 1
        preds = sample_next_token(out.logits[0], temperature=0)  # (L,), preds[j] = main model's token after position j
        valid = seq.shape[1]  # positions whose hidden state is built on verified tokens only
        if pending:
            drafted += 1
            if preds[-2] == seq[0, -1]:
                accepted += 1
                seq = torch.cat([seq, preds[-1].view(1, 1)], dim=1)
            else:
                seq = torch.cat([seq[:, :-1], preds[-2].view(1, 1)], dim=1)  # replace the wrong draft
                valid -= 1
        else:
            seq = torch.cat([seq, preds[-1].view(1, 1)], dim=1)
        if seq.shape[1] >= target:
            break
        h = out.hidden_states[:, :valid]  # (1, valid, d)
        emb = model.model.embed_tokens(seq[:, 1 : valid + 1])  # (1, valid, d)
        draft = sample_next_token(model.mtp_logits(0, model.mtp[0](h, emb))[:, -1], temperature=0)[:, None]  # (1, 1)
        seq = torch.cat([seq, draft], dim=1)
        pending = True
    return SpeculativeResult(seq[:, :target], drafted, accepted, passes, time.perf_counter() - start)
