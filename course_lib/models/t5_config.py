"""T5 hyperparameters (Raffel et al. 2020) with HF ``T5Config`` field names; used by :mod:`course_lib.models.t5`."""

from __future__ import annotations

from dataclasses import dataclass

from course_lib.checks import check_positive_ints
from course_lib.models.hf import config_from_hf


@dataclass
class T5Config:
    """T5 hyperparameters with HF ``T5Config`` field names."""
    vocab_size: int = 32128                   # SentencePiece vocabulary size
    d_model: int = 512                        # hidden size
    d_kv: int = 64                            # head dimension (d_model need not equal heads × d_kv)
    d_ff: int = 2048                          # feed-forward width
    num_layers: int = 6                       # encoder layers
    num_decoder_layers: int | None = None     # decoder layers (None: same as encoder)
    num_heads: int = 8                        # attention heads
    relative_attention_num_buckets: int = 32  # position-bias buckets per direction pair
    relative_attention_max_distance: int = 128  # distances beyond this share the last bucket
    layer_norm_epsilon: float = 1e-6          # RMSNorm ε
    feed_forward_proj: str = "relu"           # "relu" (T5) or "gated-gelu" (T5 v1.1, GELU-tanh gate)
    dropout_rate: float = 0.1                 # dropout everywhere (training only)
    pad_token_id: int = 0                     # also the decoder start token in T5
    decoder_start_token_id: int = 0           # first decoder input
    scale_decoder_outputs: bool = True        # multiply by d_model^-0.5 before the tied head (T5 v1.0)

    def __post_init__(self):
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.feed_forward_proj not in ("relu", "gated-gelu"):
            raise ValueError(f"feed_forward_proj must be 'relu' or 'gated-gelu', got {self.feed_forward_proj!r}")
        check_positive_ints(self, "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers",
                            "num_heads", "relative_attention_num_buckets")

    @classmethod
    def from_hf(cls, config) -> T5Config:
        """From a transformers ``T5Config`` or its config.json dict; refuses an untied head (T5 v1.1) and other activations."""
        return config_from_hf(cls, config, {"feed_forward_proj": ("relu", "gated-gelu"), "tie_word_embeddings": (True,),
                                            "is_decoder": (False,)})
