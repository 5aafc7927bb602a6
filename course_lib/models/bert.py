"""BERT, the encoder-only Transformer (Devlin et al. 2018), with HF ``BertModel`` parameter names.

    h⁰ = LayerNorm(E_tok[x] + E_pos[t] + E_type[s])                       (§3, Figure 2)
    a  = LayerNorm(hˡ⁻¹ + Attention(hˡ⁻¹))                                 post-LN (Vaswani §3.1)
    hˡ = LayerNorm(a + W₂ GELU(W₁ a))

Every token sees every other token (bidirectional, only padding is masked). Parameter names are
the checkpoint's, so ``course_lib.weights.minilm_state_dict()`` loads with :meth:`BertModel.from_hf`
(the table :data:`HF_IGNORED` lists the one buffer HF stores that we recompute). Sentence
embeddings built on it live in :mod:`course_lib.models.sentence_encoder`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import attend
from course_lib.checks import check_positive_ints, check_token_ids
from course_lib.models.hf import config_from_hf, load_hf_weights

HF_IGNORED = ("embeddings.position_ids",)  # HF buffer arange(max_positions): we build it on the fly


@dataclass
class BertConfig:
    """BERT hyperparameters with HF ``BertConfig`` field names."""
    vocab_size: int = 30522               # WordPiece vocabulary size
    hidden_size: int = 384                # d_model
    num_hidden_layers: int = 6            # encoder layers
    num_attention_heads: int = 12         # heads; head dim = hidden_size / heads
    intermediate_size: int = 1536         # FFN width (4 × hidden)
    max_position_embeddings: int = 512    # learned absolute positions
    type_vocab_size: int = 2              # segment A / B (token_type_ids)
    layer_norm_eps: float = 1e-12         # LayerNorm ε of the checkpoint
    hidden_dropout_prob: float = 0.1      # dropout after embeddings / sublayers (training only)
    attention_probs_dropout_prob: float = 0.1  # dropout on attention weights (training only)
    pad_token_id: int = 0                 # id of [PAD]

    def __post_init__(self):
        check_positive_ints(self, "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "max_position_embeddings", "type_vocab_size")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by num_attention_heads "
                             f"{self.num_attention_heads}")

    @classmethod
    def from_hf(cls, config) -> BertConfig:
        """From a transformers ``BertConfig`` or its config.json dict; BERT here uses exact GELU and absolute positions."""
        return config_from_hf(cls, config, {"hidden_act": ("gelu",), "position_embedding_type": ("absolute",)})


@dataclass
class BertOutput:
    """BertModel's output: last hidden states, pooled [CLS], attentions (HF ``BaseModelOutputWithPooling``)."""
    last_hidden_state: torch.Tensor                 # (B, T, D)
    pooler_output: torch.Tensor                     # (B, D): tanh(W h_[CLS])
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T) when asked for


@dataclass
class MaskedLMOutput:
    """BertForMaskedLM's output: MLM logits and attentions."""
    logits: torch.Tensor                            # (B, T, V)
    attentions: tuple[torch.Tensor, ...] | None = None


class BertEmbeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm and dropout (BERT §3.1, Fig. 2)."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids and segment ids → ``(B, T, D)`` embeddings."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) \
            + self.token_type_embeddings(token_type_ids)  # (B, T, D)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    """Multi-head self-attention with HF's ``query``/``key``/``value`` names."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.n_heads = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, mask: torch.Tensor, need_weights: bool):
        """``x`` ``(B, T, D)`` → ``(context (B, T, D), weights (B, H, T, T) or None)``."""
        B, T, D = x.shape
        q, k, v = (proj(x).view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, H, T, Dh)
                   for proj in (self.query, self.key, self.value))
        p = self.dropout_p if self.training else 0.0
        out, weights = attend(q, k, v, mask, need_weights=need_weights, dropout_p=p)  # (B, H, T, Dh)
        return out.transpose(1, 2).reshape(B, T, D), weights  # (B, T, D), (B, H, T, T)


class BertSelfOutput(nn.Module):
    """Projection + dropout + residual + LayerNorm (post-LN); also the FFN's output block."""

    def __init__(self, d_in: int, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(d_in, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """LayerNorm(residual + dropout(W h)): the post-LN residual step."""
        return self.LayerNorm(residual + self.dropout(self.dense(h)))


class BertAttention(nn.Module):
    """Self-attention followed by its post-LN output block (HF ``BertAttention``)."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config.hidden_size, config)

    def forward(self, x, mask, need_weights):
        """``x`` ``(B, T, D)`` → ``(LayerNorm(x + attention), weights or None)``."""
        h, weights = self.self(x, mask, need_weights)
        return self.output(h, x), weights


class BertIntermediate(nn.Module):
    """The feed-forward up-projection with exact GELU (HF ``BertIntermediate``)."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)

    def forward(self, x):
        """GELU(W₁ x), ``(B, T, intermediate_size)``."""
        return F.gelu(self.dense(x))  # exact (erf) GELU, Hendrycks & Gimpel 2016


class BertLayer(nn.Module):
    """One post-LN encoder layer: attention block, then feed-forward block."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertSelfOutput(config.intermediate_size, config)

    def forward(self, x, mask, need_weights):
        """``x`` ``(B, T, D)`` → ``(layer output, attention weights or None)``."""
        a, weights = self.attention(x, mask, need_weights)
        return self.output(self.intermediate(a), a), weights


class BertEncoder(nn.Module):
    """The stack of :class:`BertLayer` (HF ``BertEncoder.layer``)."""
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))


class BertPooler(nn.Module):
    """tanh(W h_[CLS] + b): the sentence vector BERT's next-sentence head was trained on."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, h):
        """tanh(W h_[CLS]) ``(B, D)``."""
        return torch.tanh(self.dense(h[:, 0]))  # (B, D)


def _check_same_shape(name: str, t: torch.Tensor, ids: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.shape != ids.shape:
        raise ValueError(f"{name} must have the shape of input_ids {tuple(ids.shape)}, got "
                         f"{tuple(getattr(t, 'shape', ()))}")


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation (``initializer_range`` 0.02): N(0, std) weights, zero biases, [PAD] row zero."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        nn.init.zeros_(module.weight[module.padding_idx])


class BertModel(nn.Module):
    """Embeddings → N post-LN encoder layers → (pooler). Bidirectional: only padding is masked."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.apply(init_weights)

    @classmethod
    def from_hf(cls, config, state_dict: dict[str, torch.Tensor]) -> BertModel:
        """A BertModel from a transformers config and ``BertModel`` state dict (pooler included when present), eval mode."""
        model = cls(BertConfig.from_hf(config), add_pooling_layer=any(k.startswith("pooler.") for k in state_dict))
        return load_hf_weights(model, {k: v for k, v in state_dict.items() if not k.endswith(HF_IGNORED)})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, output_attentions: bool = False) -> BertOutput:
        """``input_ids`` (B, T); ``attention_mask`` (B, T), 1 = real token, 0 = padding."""
        config = self.config
        check_token_ids(input_ids, config.vocab_size, "input_ids", config.max_position_embeddings)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        _check_same_shape("token_type_ids", token_type_ids, input_ids)
        check_token_ids(token_type_ids, config.type_vocab_size, "token_type_ids")
        mask = None
        if attention_mask is not None:
            _check_same_shape("attention_mask", attention_mask, input_ids)
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): True = attend to that key
        h = self.embeddings(input_ids, token_type_ids)  # (B, T, D)
        attentions = []
        for layer in self.encoder.layer:
            h, weights = layer(h, mask, output_attentions)
            attentions.append(weights)
        pooled = self.pooler(h) if self.pooler is not None else None
        return BertOutput(h, pooled, tuple(attentions) if output_attentions else None)


class BertLMPredictionHead(nn.Module):
    """MLM head: dense → GELU → LayerNorm → decoder tied to the word embeddings (+ bias)."""

    def __init__(self, config: BertConfig, word_embeddings: nn.Embedding):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.word_embeddings = [word_embeddings]  # a list so the tied weight is not registered twice
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` hidden states → ``(B, T, V)`` MLM logits."""
        h = self.transform.LayerNorm(F.gelu(self.transform.dense(h)))
        return h @ self.word_embeddings[0].weight.T + self.bias  # (B, T, V)


class BertForMaskedLM(nn.Module):
    """BERT + MLM head (HF names ``bert.*``, ``cls.predictions.*``); returns logits ``(B, T, V)``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = nn.Module()
        self.cls.predictions = BertLMPredictionHead(config, self.bert.embeddings.word_embeddings)
        self.cls.apply(init_weights)

    @classmethod
    def from_hf(cls, config, state_dict: dict[str, torch.Tensor]) -> BertForMaskedLM:
        """A BertForMaskedLM from a transformers config and state dict (tied decoder checked and dropped), eval mode."""
        tied = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
                "cls.predictions.decoder.bias": "cls.predictions.bias"}
        return load_hf_weights(cls(BertConfig.from_hf(config)),
                               {k: v for k, v in state_dict.items() if not k.endswith(HF_IGNORED)}, tied)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_attentions=False):
        """Masked-LM logits ``(B, T, V)`` at every position (HF ``BertForMaskedLM``)."""
        out = self.bert(input_ids, attention_mask, token_type_ids, output_attentions)
        return MaskedLMOutput(self.cls.predictions(out.last_hidden_state), out.attentions)
