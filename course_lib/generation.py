"""Autoregressive generation: samplers, the one decoding interface, the decode loop, streaming.

The samplers work on any logits ``(..., V)`` and are shared by every decoder in the course:

- temperature τ:      p_i = softmax(z / τ)_i; τ → 0 is greedy argmax (Ackley et al. 1985)
- top-k:              keep the k largest logits (Fan et al. 2018)
- top-p (nucleus):    keep the smallest set whose probability reaches p (Holtzman et al. 2020, §3.1)
- repetition penalty: z_i / θ if z_i > 0 else z_i · θ for tokens already seen (Keskar et al. 2019, CTRL §4.1)

They follow HF ``transformers`` logits processors (``TemperatureLogitsWarper``, ``TopKLogitsWarper``,
``TopPLogitsWarper``, ``RepetitionPenaltyLogitsProcessor``) and are tested equal to them.

:func:`generate` drives any :class:`Decoder`: ``model.new_cache(batch_size, max_len)`` builds an
empty cache and ``model.decode_step(input_ids, cache, attention_mask)`` runs the positions not yet
in the cache and returns the last position's logits ``(B, V)`` with the extended cache. The prompt
runs once (prefill), then one token per step (decode). A KV cache (LLaMA, GPT-2:
:class:`course_lib.kv_cache.KVCache`), a recurrent state (LSTM) or the token history of a model
that recomputes (:class:`Recompute`: DeepSeek's greedy baseline) all fit; an encoder–decoder
adapts through its decoder with the encoder memory fixed (T5 ``as_decoder``, cached as well).
Batched prompts of different lengths are left-padded (:func:`pad_left`) with an attention mask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import torch

from course_lib.text_decoding import TextStream


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError("logits must be a floating-point torch.Tensor of shape (..., vocab)")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (..., vocab) with vocab >= 1, got {tuple(logits.shape)}")


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Set every logit below the k-th largest to -inf (ties with the k-th are kept, as in HF)."""
    _check_logits(logits)
    _check_sampling(1.0, top_k, None)
    k = min(top_k, logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: keep the most probable tokens whose cumulative probability reaches ``top_p``.

    Sorted ascending, a token is dropped when the probability mass up to and including it is
    ≤ 1 - p; the most probable token is always kept (HF ``TopPLogitsWarper``).
    """
    _check_logits(logits)
    _check_sampling(1.0, None, top_p)
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # (..., V) ascending mass
    drop_sorted = cumulative <= 1 - top_p
    drop_sorted[..., -1:] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def apply_repetition_penalty(logits: torch.Tensor, previous_ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty on every token in ``previous_ids`` ``(B, T)``: logits ``(B, V)`` z -> z/θ (z > 0), z·θ (z ≤ 0)."""
    _check_logits(logits)
    if not isinstance(penalty, (int, float)) or penalty <= 0:
        raise ValueError(f"repetition_penalty must be a number > 0 (1 = off), got {penalty!r}")
    if logits.dim() != 2 or previous_ids.dim() != 2 or previous_ids.shape[0] != logits.shape[0]:
        raise ValueError(f"logits (B, V) and previous_ids (B, T) must share B, got {tuple(logits.shape)} "
                         f"and {tuple(previous_ids.shape)}")
    seen = logits.gather(-1, previous_ids)  # (B, T)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, previous_ids, seen)


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (HF's order); ``temperature=0`` leaves logits for argmax."""
    _check_logits(logits)
    _check_sampling(temperature, top_k, top_p)
    if temperature > 0:
        logits = logits / temperature
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution :func:`sample_next_token` draws from (one-hot on the argmax when τ = 0)."""
    logits = process_logits(logits, temperature, top_k, top_p)
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return logits.softmax(dim=-1)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row of ``logits`` ``(B, V)`` -> ``(B,)``; ``temperature=0`` is greedy."""
    if temperature == 0:
        _check_logits(logits)
        _check_sampling(temperature, top_k, top_p)
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits, temperature, top_k, top_p)
    flat = probs.reshape(-1, probs.shape[-1])  # (B, V)
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


class DecodingStep(Protocol):
    """One step: ids ``(B, T)`` not yet in ``cache`` (+ mask ``(B, past + T)``) -> logits ``(B, V)`` at the last position, cache."""

    def __call__(self, input_ids: torch.Tensor, cache: Any,
                 attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]: ...


@runtime_checkable
class Decoder(Protocol):
    """What :func:`generate` drives (see the table in docs/NOTES.md "Decoding interface").

    ``new_cache(batch_size, max_len)``: an empty cache for ``max_len`` positions (any object).
    ``decode_step``: a :class:`DecodingStep`; ``cache=None`` means no cache (recompute from
    ``input_ids``, which then hold the whole sequence). ``attention_mask`` is 1 for real tokens and
    0 for left padding; a decoder that cannot mask must refuse a mask with zeros (:func:`require_unpadded`).
    """

    def new_cache(self, batch_size: int, max_len: int) -> Any: ...

    def decode_step(self, input_ids: torch.Tensor, cache: Any,
                    attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]: ...


def require_unpadded(attention_mask: torch.Tensor | None, who: str) -> None:
    """Refuse left padding in a decoder that has no attention mask (its positions would be wrong)."""
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        raise ValueError(f"{who} cannot decode padded prompts (attention_mask has zeros); generate each prompt "
                         f"alone or use a decoder with attention_mask support (LlamaForCausalLM)")


class Recompute:
    """:class:`Decoder` for a model without a cache: the cache is the token history ``(B, t)``.

    ``model(ids).logits`` ``(B, T, V)`` is recomputed over the last ``window`` tokens (all when None)
    each step, so the output equals a plain "append argmax and run again" loop. A sliding window
    lifts the model's context limit (``config`` is exposed only without one). A subclass whose model
    has another call overrides :meth:`logits` (the seq2seq Transformer and VLM adapters).
    """

    def __init__(self, model: Callable, window: int | None = None):
        self.model, self.window = model, window
        self.config = getattr(model, "config", None) if window is None else None  # read by _context_window

    def new_cache(self, batch_size: int, max_len: int) -> torch.Tensor | None:
        return None

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, t, V)`` of the token sequence ``ids`` ``(B, t)``."""
        return self.model(ids).logits

    def decode_step(self, input_ids, cache, attention_mask=None):
        require_unpadded(attention_mask, type(self.model).__name__)
        ids = input_ids if cache is None else torch.cat([cache, input_ids], dim=1)  # (B, t)
        context = ids if self.window is None else ids[:, -self.window:]
        return self.logits(context)[:, -1], ids


def model_device(model) -> torch.device:
    """The device of ``model``'s first parameter (a wrapper's ``.model`` is looked into); the CPU when it has none.

    Builders of ids and masks put their tensors here, so one code path serves the CPU and ``cfg.device``.
    """
    for m in (model, getattr(model, "model", None)):
        if isinstance(m, torch.nn.Module):
            p = next(m.parameters(), None)
            if p is not None:
                return p.device
    return torch.device("cpu")


def pad_left(prompts: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists of different lengths -> ``(input_ids, attention_mask)`` ``(B, T_max)``, padded on the left."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty token lists")
    width = max(map(len, prompts))
    ids = torch.tensor([[pad_token_id] * (width - len(p)) + list(p) for p in prompts], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long)
    return ids, mask


def _context_window(model) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None)


def generate_tokens(model: Decoder, input_ids: torch.Tensor, max_new_tokens: int,
                    attention_mask: torch.Tensor | None = None, temperature: float = 0.0, top_k: int | None = None,
                    top_p: float | None = None, repetition_penalty: float = 1.0, stop_tokens: Iterable[int] = (),
                    use_cache: bool = True, pad_token_id: int = 0, generator: torch.Generator | None = None,
                    logits_processor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                    ) -> Iterator[torch.Tensor]:
    """Yield the next tokens ``(B,)`` step by step; see :func:`generate` for the arguments.

    Rows that have produced a stop token get ``pad_token_id`` afterwards; the loop ends when every
    row has stopped or after ``max_new_tokens`` steps.
    """
    if not isinstance(model, Decoder):
        raise TypeError(f"model must implement the Decoder protocol (new_cache, decode_step), got "
                        f"{type(model).__name__}; wrap a model without a cache as Recompute(model)")
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
        raise TypeError("input_ids must be a torch.long tensor of shape (B, T)")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    _check_sampling(temperature, top_k, top_p)
    if not isinstance(repetition_penalty, (int, float)) or repetition_penalty <= 0:
        raise ValueError(f"repetition_penalty must be a number > 0 (1 = off), got {repetition_penalty!r}")
    B, T = input_ids.shape
    window = _context_window(model)
    if window is not None and T + max_new_tokens > window:
        raise ValueError(f"prompt of {T} tokens + max_new_tokens={max_new_tokens} exceeds the context window "
                         f"of {window} tokens; shorten the prompt or generate fewer tokens")
    if attention_mask is not None and attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, "
                         f"got {tuple(attention_mask.shape)}")
    stop = torch.tensor(sorted(set(stop_tokens)), dtype=torch.long, device=input_ids.device)
    ids, mask = input_ids, attention_mask
    done = torch.zeros(B, dtype=torch.bool, device=input_ids.device)
    cache = model.new_cache(B, T + max_new_tokens) if use_cache else None
    step_ids = ids
    with torch.no_grad():
        for _ in range(max_new_tokens):
            if use_cache:
                logits, cache = model.decode_step(step_ids, cache, mask)  # (B, V)
            else:
                logits, _ = model.decode_step(ids, None, mask)
            if repetition_penalty != 1.0:
                logits = apply_repetition_penalty(logits, ids, repetition_penalty)
            if logits_processor is not None:
                logits = logits_processor(ids, logits)  # (B, V), e.g. a grammar mask
            token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
            if stop.numel():
                token = torch.where(done, torch.full_like(token, pad_token_id), token)
            yield token
            if stop.numel():
                done = done | torch.isin(token, stop)
                if bool(done.all()):
                    return
            ids = torch.cat([ids, token[:, None]], dim=1)  # (B, T + 1)
            step_ids = token[:, None]  # (B, 1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)


def generate(model: Decoder, input_ids: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """Prompt ``(B, T)`` -> prompt + continuation ``(B, T + n)``, n ≤ ``max_new_tokens``.

    Keyword arguments: ``attention_mask`` ``(B, T)`` (0 on left padding, for batched prompts of
    different lengths), ``temperature`` (0 = greedy, the default), ``top_k``, ``top_p``,
    ``repetition_penalty`` (1 = off), ``stop_tokens`` (ids that end a row, kept in the output),
    ``use_cache`` (KV cache, default True; False recomputes the whole sequence every step),
    ``pad_token_id`` (written after a row stopped), ``generator`` (a seeded ``torch.Generator``),
    ``logits_processor`` (``f(ids (B, T + t), logits (B, V)) -> logits``, HF's ``LogitsProcessor``
    convention, applied after the repetition penalty and before sampling: constrained decoding
    masks logits here, ``course_lib.constrained.tool_calls``).
    """
    steps = [t[:, None] for t in generate_tokens(model, input_ids, max_new_tokens, **kwargs)]
    return torch.cat([input_ids, *steps], dim=1)


def stream(model: Decoder, tokenizer, input_ids: torch.Tensor, max_new_tokens: int, **kwargs) -> Iterator[str]:
    """Yield the continuation of one prompt ``(1, T)`` as text pieces while it is generated.

    A byte-level token can end in the middle of a UTF-8 character (a Chinese character or emoji
    spans several tokens): :class:`~course_lib.text_decoding.Detokenizer` holds its bytes back until
    it completes, so the pieces join to ``tokenizer.decode(ids, skip_special_tokens=True)``.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"stream takes one prompt of shape (1, T), got {tuple(input_ids.shape)}")
    text = TextStream(tokenizer)
    for token in generate_tokens(model, input_ids, max_new_tokens, **kwargs):
        if piece := text.push(int(token[0])):
            yield piece
    if piece := text.finish():
        yield piece
