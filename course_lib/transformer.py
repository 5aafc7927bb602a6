"""The original encoder–decoder Transformer (Vaswani et al. 2017), bottom-up.

Class hierarchy (the one the notes draw, see ``Fig/Transformer代码class层级.png``)::

    Transformer
    ├── TokenEmbedding ×2 (source, target)   embedding · √d_model          (§3.4)
    ├── PositionalEncoding                   sinusoidal table               (§3.5)
    ├── Encoder ── EncoderLayer ×N ── MultiHeadAttention (self), PositionwiseFeedForward
    ├── Decoder ── DecoderLayer ×N ── MultiHeadAttention (self, cross), PositionwiseFeedForward
    └── generator: Linear(d_model → vocab)

Each sub-layer is wrapped in a residual connection and a LayerNorm (§3.1): post-norm
``LayerNorm(x + Sublayer(x))`` as in the paper, or pre-norm ``x + Sublayer(LayerNorm(x))``.
Parameter names follow ``torch.nn.Transformer`` (``norm1``, ``linear1``, …) so its weights load
through the short table :data:`TORCH_TRANSFORMER_NAMES`. ``torch.nn.Transformer`` always ends
each stack with a LayerNorm (``encoder.norm``/``decoder.norm``), even in post-norm mode where the
paper has none: :attr:`TransformerConfig.final_norm` makes that explicit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from course_lib.attention import MultiHeadAttention, causal_mask, padding_mask
from course_lib.checks import check_positive_ints
from course_lib.transformer_torch import TORCH_TRANSFORMER_NAMES as TORCH_TRANSFORMER_NAMES
from course_lib.transformer_torch import state_from_torch_transformer as state_from_torch_transformer


@dataclass
class TransformerConfig:
    """Encoder–decoder Transformer sizes (Vaswani et al. 2017, Table 3 names)."""
    src_vocab_size: int             # source vocabulary size
    tgt_vocab_size: int             # target vocabulary size
    d_model: int = 512              # width of every residual stream (paper base: 512)
    num_heads: int = 8              # attention heads h; d_model must divide by it
    num_encoder_layers: int = 6     # N encoder layers (paper: 6)
    num_decoder_layers: int = 6     # N decoder layers (paper: 6)
    d_ff: int = 2048                # inner width of the feed-forward block (paper: 4·d_model)
    dropout: float = 0.1            # P_drop on sub-layer outputs, embeddings+PE, attention, FFN
    max_len: int = 5000             # rows of the positional-encoding table (longest sequence)
    pad_id: int = 0                 # padding token id in both vocabularies (masked as a key)
    norm_first: bool = False        # False: post-norm (paper); True: pre-norm
    final_norm: bool | None = None  # LayerNorm after each stack; None: only with pre-norm
    layer_norm_eps: float = 1e-5    # ε of every LayerNorm

    def __post_init__(self):
        check_positive_ints(self, "src_vocab_size", "tgt_vocab_size", "d_model", "num_heads", "num_encoder_layers",
                            "num_decoder_layers", "d_ff", "max_len")
        if self.d_model % self.num_heads:
            raise ValueError(f"TransformerConfig.d_model ({self.d_model}) must be divisible by "
                             f"num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TransformerConfig.dropout must be in [0, 1), got {self.dropout}")

    @property
    def use_final_norm(self) -> bool:
        """True for pre-norm layers, which need a final LayerNorm on each stack."""
        return self.norm_first if self.final_norm is None else self.final_norm


def sinusoidal_table(max_len: int, d_model: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^{2i/d}), PE(pos, 2i+1) = cos(pos / 10000^{2i/d}); shape ``(max_len, d)``."""
    if max_len <= 0 or d_model <= 0 or d_model % 2:
        raise ValueError(f"need max_len > 0 and an even d_model > 0, got max_len={max_len}, d_model={d_model}")
    position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
    inv_freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(max_len, d_model)
    table[:, 0::2] = torch.sin(position * inv_freq)  # (max_len, d/2)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class PositionalEncoding(nn.Module):
    """Add the sinusoidal table to ``(B, T, d_model)`` inputs, then dropout (§3.5)."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + PE[:T]: adds the sinusoidal encodings, then dropout."""
        max_len, d_model = self.pe.shape
        if x.dim() != 3 or x.shape[-1] != d_model:
            raise ValueError(f"x must have shape (B, T, d_model={d_model}), got {tuple(x.shape)}")
        if x.shape[1] > max_len:
            raise ValueError(f"sequence length {x.shape[1]} exceeds the positional-encoding table "
                             f"(max_len={max_len}); build the model with a larger max_len")
        return self.dropout(x + self.pe[: x.shape[1]])


class TokenEmbedding(nn.Module):
    """Token ids ``(B, T)`` → vectors ``(B, T, d_model)`` multiplied by √d_model (§3.4)."""

    def __init__(self, vocab_size: int, d_model: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.scale = math.sqrt(d_model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embedding(ids) · √d_model (Vaswani §3.4)."""
        if tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int):
            raise ValueError(f"tokens must be integer ids of shape (B, T), got {tokens.dtype} {tuple(tokens.shape)}")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() >= self.embedding.num_embeddings):
            raise ValueError(f"token ids must lie in [0, {self.embedding.num_embeddings}), "
                             f"got range [{int(tokens.min())}, {int(tokens.max())}]")
        return self.embedding(tokens) * self.scale  # (B, T, d_model)


class PositionwiseFeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, applied to every position alike (§3.3)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """W₂ ReLU(W₁ x) with dropout (Vaswani §3.3)."""
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))  # (B, T, d_ff) -> (B, T, d_model)


class _ResidualLayer(nn.Module):
    """Shared by both layer types: one sub-layer with residual + LayerNorm, post- or pre-norm (§3.1)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.norm_first = config.norm_first
        self.dropout = nn.Dropout(config.dropout)

    def residual(self, x: torch.Tensor, sublayer, norm: nn.LayerNorm):
        """post-norm: LayerNorm(x + Dropout(Sublayer(x))); pre-norm: x + Dropout(Sublayer(LayerNorm(x))).

        ``sublayer`` returns ``(output, attention weights or None)``; the weights are passed through.
        """
        if self.norm_first:
            out, weights = sublayer(norm(x))
            return x + self.dropout(out), weights
        out, weights = sublayer(x)
        return norm(x + self.dropout(out)), weights


class EncoderLayer(_ResidualLayer):
    """Self-attention block, then feed-forward block."""

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        self.self_attn = MultiHeadAttention(config.d_model, config.num_heads, config.dropout)
        self.feed_forward = PositionwiseFeedForward(config.d_model, config.d_ff, config.dropout)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, S, d_model)`` → same shape, and the self-attention weights ``(B, H, S, S)``."""
        x, weights = self.residual(x, lambda h: self.self_attn(h, h, h, mask), self.norm1)
        x, _ = self.residual(x, lambda h: (self.feed_forward(h), None), self.norm2)
        return x, weights


class DecoderLayer(_ResidualLayer):
    """Masked self-attention block, cross-attention block (queries from the decoder, keys and values
    from the encoder output), then feed-forward block."""

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        self.self_attn = MultiHeadAttention(config.d_model, config.num_heads, config.dropout)
        self.cross_attn = MultiHeadAttention(config.d_model, config.num_heads, config.dropout)
        self.feed_forward = PositionwiseFeedForward(config.d_model, config.d_ff, config.dropout)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.norm3 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``y`` ``(B, T, d_model)``, ``memory`` ``(B, S, d_model)`` → ``y`` and weights ``(B, H, T, T)``, ``(B, H, T, S)``."""
        y, self_weights = self.residual(y, lambda h: self.self_attn(h, h, h, tgt_mask), self.norm1)
        y, cross_weights = self.residual(y, lambda h: self.cross_attn(h, memory, memory, memory_mask), self.norm2)
        y, _ = self.residual(y, lambda h: (self.feed_forward(h), None), self.norm3)
        return y, self_weights, cross_weights


class Encoder(nn.Module):
    """N stacked :class:`EncoderLayer` (+ a final LayerNorm when ``config.use_final_norm``)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_encoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.use_final_norm else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple]:
        """Return the memory ``(B, S, d_model)`` and each layer's self-attention weights."""
        attentions = []
        for layer in self.layers:
            x, weights = layer(x, mask)
            attentions.append(weights)
        return (x if self.norm is None else self.norm(x)), tuple(attentions)


class Decoder(nn.Module):
    """N stacked :class:`DecoderLayer` (+ a final LayerNorm when ``config.use_final_norm``)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_decoder_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.use_final_norm else None

    def forward(self, y: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple, tuple]:
        """Return hidden states ``(B, T, d_model)``, self- and cross-attention weights per layer."""
        self_attentions, cross_attentions = [], []
        for layer in self.layers:
            y, self_weights, cross_weights = layer(y, memory, tgt_mask, memory_mask)
            self_attentions.append(self_weights)
            cross_attentions.append(cross_weights)
        return (y if self.norm is None else self.norm(y)), tuple(self_attentions), tuple(cross_attentions)


@dataclass
class Seq2SeqOutput:
    """An encoder–decoder's output (HF ``Seq2SeqLMOutput`` names): logits, attentions, hidden states."""
    logits: torch.Tensor                     # (B, T, tgt_vocab_size)
    encoder_attentions: tuple | None = None  # per encoder layer (B, H, S, S)
    decoder_attentions: tuple | None = None  # per decoder layer (B, H, T, T)
    cross_attentions: tuple | None = None    # per decoder layer (B, H, T, S)
    last_hidden_state: torch.Tensor | None = None          # decoder output (B, T, D), when the model exposes it
    encoder_last_hidden_state: torch.Tensor | None = None  # encoder output (B, S, D), when the model exposes it


class Transformer(nn.Module):
    """Encoder–decoder Transformer on token ids; ``forward(src, tgt)`` gives next-token logits for ``tgt``."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.src_embed = TokenEmbedding(config.src_vocab_size, config.d_model)
        self.tgt_embed = TokenEmbedding(config.tgt_vocab_size, config.d_model)
        self.positional_encoding = PositionalEncoding(config.d_model, config.max_len, config.dropout)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.generator = nn.Linear(config.d_model, config.tgt_vocab_size)
        for p in self.parameters():  # Xavier, as in the annotated Transformer and torch.nn.Transformer
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def src_mask(self, src: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 1, S)``: every query may attend to every non-padding source token."""
        return padding_mask(src, self.config.pad_id)

    def tgt_mask(self, tgt: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T, T)``: causal (no peeking at later tokens) and no padding keys."""
        return padding_mask(tgt, self.config.pad_id) & causal_mask(tgt.shape[1], device=tgt.device)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Source ids ``(B, S)`` → memory ``(B, S, d_model)`` and encoder attentions."""
        return self.encoder(self.positional_encoding(self.src_embed(src)), self.src_mask(src))

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> tuple:
        """Target ids ``(B, T)`` and memory → logits ``(B, T, V)``, self- and cross-attentions."""
        y = self.positional_encoding(self.tgt_embed(tgt))  # (B, T, d_model)
        y, self_attns, cross_attns = self.decoder(y, memory, self.tgt_mask(tgt), src_mask)
        return self.generator(y), self_attns, cross_attns

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, output_attentions: bool = False) -> Seq2SeqOutput:
        """``src`` ``(B, S)``, ``tgt`` ``(B, T)`` ids → logits ``(B, T, V)`` (+ attention maps on request)."""
        if src.dim() != 2 or tgt.dim() != 2 or src.shape[0] != tgt.shape[0]:
            raise ValueError(f"src and tgt must be token ids (B, S) and (B, T) with the same B, "
                             f"got {tuple(src.shape)} and {tuple(tgt.shape)}")
        memory, enc_attns = self.encode(src)
        logits, dec_attns, cross_attns = self.decode(tgt, memory, self.src_mask(src))
        if not output_attentions:
            return Seq2SeqOutput(logits)
        return Seq2SeqOutput(logits, enc_attns, dec_attns, cross_attns)
