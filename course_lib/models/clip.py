"""CLIP, the contrastive image–text dual encoder (the LLaVA-style VLM built on its text tower: :mod:`course_lib.models.vlm`).

**CLIP** (Radford et al. 2021, §2.3 and Fig. 3): an image encoder (:class:`~course_lib.models.vit.ViT`)
and a causal text encoder (read at the <eos> token) are projected to one space and L2-normalised;
for a batch of N pairs the logits are s_ij = e^τ · ⟨img_i, txt_j⟩ and the symmetric InfoNCE loss is

    L = ½ [ CE(S, diag) + CE(Sᵀ, diag) ]          (each image must pick its own caption, and vice versa)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import causal_mask, padding_mask
from course_lib.checks import check_positive_ints, check_token_ids
from course_lib.models.vit import Block, EncoderOutput, ViT, ViTConfig, run_blocks

# HF ``CLIPTextModel`` name → ours (substring replacements, applied in order).
HF_TO_OURS = (
    ("embeddings.token_embedding.", "token_embedding."),
    ("embeddings.position_embedding.", "position_embedding."),
    ("encoder.layers.", "layers."),
    (".self_attn.out_proj.", ".attention.o_proj."),
    (".self_attn.", ".attention."),
    (".layer_norm1.", ".layernorm_before."),
    (".layer_norm2.", ".layernorm_after."),
)


@dataclass
class TextConfig:
    """CLIP text-tower hyperparameters (HF ``CLIPTextConfig`` names)."""
    vocab_size: int = 16                # caption vocabulary (course_lib.vlm_data.CaptionTokenizer)
    max_position_embeddings: int = 16   # longest token sequence (learned positions)
    hidden_size: int = 64               # width
    num_hidden_layers: int = 1          # blocks
    num_attention_heads: int = 4        # heads
    intermediate_size: int = 128        # MLP width
    layer_norm_eps: float = 1e-5        # LayerNorm epsilon
    pad_token_id: int = 0               # padding id (masked out as a key)
    eos_token_id: int = 2               # the text embedding is read at the first <eos>

    def __post_init__(self):
        check_positive_ints(self, "vocab_size", "max_position_embeddings", "hidden_size", "num_hidden_layers",
                            "num_attention_heads", "intermediate_size")


@dataclass
class CLIPConfig:
    """CLIP: a ViT config, a text config, the shared embedding width and the initial temperature."""
    vision: ViTConfig = field(default_factory=ViTConfig)  # image tower
    text: TextConfig = field(default_factory=TextConfig)  # text tower
    projection_dim: int = 32            # shared embedding width
    logit_scale_init: float = math.log(1 / 0.07)  # τ: CLIP starts at temperature 0.07 (§2.5)

    def __post_init__(self):
        check_positive_ints(self, "projection_dim")


class TextTransformer(nn.Module):
    """Token + position embeddings → causal pre-LN blocks → final LayerNorm (CLIP's text tower)."""

    def __init__(self, config: TextConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size must be a multiple of num_attention_heads, got {config}")
        self.config = config
        d = config.hidden_size
        self.token_embedding = nn.Embedding(config.vocab_size, d)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, d)
        self.layers = nn.ModuleList(
            Block(d, config.num_attention_heads, config.intermediate_size, config.layer_norm_eps)
            for _ in range(config.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def check_ids(self, input_ids: torch.Tensor, offset: int = 0) -> None:
        """Ids in the vocabulary and ``offset + T`` within ``max_position_embeddings``."""
        check_token_ids(input_ids, self.config.vocab_size)
        limit = self.config.max_position_embeddings
        if offset + input_ids.shape[1] > limit:
            raise ValueError(f"sequence of {offset + input_ids.shape[1]} tokens exceeds "
                             f"max_position_embeddings={limit}")

    def forward(self, input_ids: torch.Tensor, output_attentions: bool = False) -> EncoderOutput:
        """``(B, T)`` ids → :class:`EncoderOutput` with causal-attention hidden states ``(B, T, D)``."""
        self.check_ids(input_ids)
        t = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.position_embedding.weight[:t]  # (B, T, D)
        mask = causal_mask(t, device=x.device) & padding_mask(input_ids, self.config.pad_token_id)  # (B, 1, T, T)
        x, attentions = run_blocks(self.layers, x, mask, output_attentions)
        return EncoderOutput(self.final_layer_norm(x), attentions)

    def pooled(self, input_ids: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """Hidden state at each row's first <eos>, (B, D)."""
        is_eos = input_ids == self.config.eos_token_id
        if not bool(is_eos.any(dim=1).all()):
            raise ValueError(f"every row of input_ids must contain eos_token_id={self.config.eos_token_id}")
        first = is_eos.int().argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0]), first]


def state_dict_from_hf(hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an HF ``CLIPTextModel`` state dict (``text_model.`` prefix optional) to :class:`TextTransformer`'s."""
    out = {}
    for name, tensor in hf_state_dict.items():
        name = name.removeprefix("text_model.")
        for hf, ours in HF_TO_OURS:
            name = name.replace(hf, ours)
        out[name] = tensor
    return out


def clip_loss(logits_per_image: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over an (N, N) logit matrix whose diagonal holds the matching pairs."""
    if logits_per_image.dim() != 2 or logits_per_image.shape[0] != logits_per_image.shape[1]:
        raise ValueError(f"logits_per_image must be square (N, N), got {tuple(logits_per_image.shape)}")
    target = torch.arange(logits_per_image.shape[0], device=logits_per_image.device)
    return 0.5 * (F.cross_entropy(logits_per_image, target) + F.cross_entropy(logits_per_image.T, target))


class CLIP(nn.Module):
    """Dual encoder; ``forward(pixel_values, input_ids)`` → logits_per_image (B_img, B_txt)."""

    def __init__(self, config: CLIPConfig):
        super().__init__()
        self.config = config
        self.vision_model = ViT(config.vision)
        self.text_model = TextTransformer(config.text)
        self.visual_projection = nn.Linear(config.vision.hidden_size, config.projection_dim, bias=False)
        self.text_projection = nn.Linear(config.text.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init))

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unit-norm image embeddings (B, P) from the [CLS] token."""
        cls = self.vision_model(pixel_values).last_hidden_state[:, 0]  # (B, D_v)
        return F.normalize(self.visual_projection(cls), dim=-1)

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Unit-norm text embeddings (B, P) from the first <eos> token."""
        hidden = self.text_model(input_ids).last_hidden_state  # (B, T, D_t)
        return F.normalize(self.text_projection(self.text_model.pooled(input_ids, hidden)), dim=-1)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Image–text similarity logits ``(B_img, B_txt)`` = e^τ · cosine similarity (CLIP Fig. 3)."""
        image, text = self.encode_image(pixel_values), self.encode_text(input_ids)
        return self.logit_scale.exp() * image @ text.T  # (B_img, B_txt)


def retrieval_accuracy(image_embeds: torch.Tensor, text_embeds: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 image→text accuracy: image i is right when its most similar text is ``text_embeds[labels[i]]``."""
    if image_embeds.shape[0] != labels.shape[0]:
        raise ValueError(f"labels must have one entry per image, got {labels.shape[0]} for {image_embeds.shape[0]}")
    return (image_embeds @ text_embeds.T).argmax(dim=1).eq(labels).float().mean().item()
