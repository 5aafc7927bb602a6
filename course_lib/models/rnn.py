"""LSTM from scratch and a small LSTM language model.

Hochreiter & Schmidhuber 1997; the gate equations as written in the ``torch.nn.LSTM`` docs
(gate order i, f, g, o, two biases), so the weights of ``torch.nn.LSTM`` load unchanged:

    i_t = σ(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)        input gate
    f_t = σ(W_if x_t + b_if + W_hf h_{t-1} + b_hf)        forget gate
    g_t = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)     candidate cell
    o_t = σ(W_io x_t + b_io + W_ho h_{t-1} + b_ho)        output gate
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    h_t = o_t ⊙ tanh(c_t)

Parameter names are PyTorch's (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ``bias_hh_l0``),
so ``LSTM.load_state_dict(torch_lstm.state_dict())`` is the whole name table. The state is
``(h, c)`` of fixed size: memory per token is O(1) in the sequence length, unlike a KV cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generation
from course_lib.checks import check_hidden, check_positive_ints, check_token_ids


def lstm_cell(
    x: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor],
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step: ``x`` (B, D_in), ``state = (h, c)`` each (B, H) → new ``(h, c)``."""
    h, c = state
    gates = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)  # 4 × (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, c


class LSTM(nn.Module):
    """A stacked, batch-first LSTM with ``torch.nn.LSTM``'s parameter names and initialisation.

    ``forward(x, state=None)`` takes ``x`` (B, T, D_in) and an optional ``(h_0, c_0)`` each
    (num_layers, B, H); returns ``(output (B, T, H), (h_n, c_n))`` like ``nn.LSTM(batch_first=True)``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        check_positive_ints(self, "input_size", "hidden_size", "num_layers")
        for layer in range(num_layers):
            d_in = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(4 * hidden_size, d_in)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(4 * hidden_size)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(4 * hidden_size)))
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn.LSTM: U(-1/√H, 1/√H) for every parameter
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_weights(self, layer: int) -> tuple[torch.Tensor, ...]:
        """``(weight_ih, weight_hh, bias_ih, bias_hh)`` of one layer."""
        return tuple(getattr(self, f"{n}_l{layer}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x`` ``(B, T, input_size)`` → ``(outputs (B, T, H), (h_n, c_n) each (L, B, H))``."""
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor of shape (B, T, {self.input_size})")
        check_hidden(x, self.input_size)
        b = x.shape[0]
        if state is None:
            zeros = x.new_zeros(self.num_layers, b, self.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        expected = (self.num_layers, b, self.hidden_size)
        if tuple(h0.shape) != expected or tuple(c0.shape) != expected:
            raise ValueError(f"state (h_0, c_0) must each have shape {expected}, "
                             f"got {tuple(h0.shape)} and {tuple(c0.shape)}")
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            weights = self.layer_weights(layer)
            h, c = h0[layer], c0[layer]  # (B, H)
            outputs = []
            for t in range(x.shape[1]):
                h, c = lstm_cell(x[:, t], (h, c), *weights)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)  # (B, T, H): the next layer's input
            h_n.append(h)
            c_n.append(c)
        return x, (torch.stack(h_n), torch.stack(c_n))  # (B, T, H), 2 × (num_layers, B, H)


@dataclass
class LSTMLMConfig:
    """Sizes of the LSTM language model."""
    vocab_size: int = 256    # tokens (256 for byte-level text)
    embed_dim: int = 64      # width of the token embedding fed to the LSTM
    hidden_size: int = 128   # LSTM state width H (h and c each)
    num_layers: int = 1      # stacked LSTM layers

    def __post_init__(self):
        check_positive_ints(self, "vocab_size", "embed_dim", "hidden_size", "num_layers")


class LSTMLanguageModel(nn.Module):
    """Embedding → :class:`LSTM` → linear head: p(x_{t+1} | x_{≤t}) from the running state."""

    def __init__(self, config: LSTMLMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = LSTM(config.embed_dim, config.hidden_size, config.num_layers)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(
        self, input_ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``input_ids`` (B, T) → ``(logits (B, T, V), state)``; pass ``state`` back in to continue."""
        check_token_ids(input_ids, self.config.vocab_size)
        out, state = self.lstm(self.embedding(input_ids), state)  # (B, T, H)
        return self.lm_head(out), state  # (B, T, V)

    def loss(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy on ``input_ids`` (B, T)."""
        logits, _ = self(input_ids[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), input_ids[:, 1:].reshape(-1))

    def new_cache(self, batch_size: int, max_len: int) -> None:
        """:class:`course_lib.generation.Decoder`: the cache is the ``(h, c)`` state; ``None`` = zeros."""
        return None

    def decode_step(self, input_ids: torch.Tensor, cache, attention_mask: torch.Tensor | None = None):
        """Run ``input_ids`` (B, T) from state ``cache``: logits (B, V) of the last step, new ``(h, c)``."""
        generation.require_unpadded(attention_mask, "LSTMLanguageModel")
        logits, state = self(input_ids, cache)
        return logits[:, -1], state

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 **kwargs) -> torch.Tensor:
        """Sample ``max_new_tokens`` tokens one at a time, carrying only the (h, c) state
        (:func:`course_lib.generation.generate`; ``temperature=0`` is greedy)."""
        return generation.generate(self, input_ids, max_new_tokens, temperature=temperature, **kwargs)
