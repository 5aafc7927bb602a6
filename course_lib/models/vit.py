"""Vision Transformer (ViT): an image as a sequence of patches, then a Transformer encoder.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", §3.1 eq. 1–4:

    z_0 = [x_class; x_p^1 E; …; x_p^N E] + E_pos        N = (H/P)·(W/P) patches of P×P pixels
    z'_ℓ = MSA(LN(z_{ℓ-1})) + z_{ℓ-1}                  pre-LN blocks
    z_ℓ  = MLP(LN(z'_ℓ)) + z'_ℓ
    y    = LN(z_L)

The patch projection E is a Conv2d with kernel = stride = P (the same as flattening each patch with
:func:`patchify` and multiplying by E). Parameter names follow HF ``ViTModel`` (transformers 5) except
the embeddings, which :data:`HF_TO_OURS` renames; :class:`Block` (pre-LN attention + GELU MLP, with an
optional mask) is reused by the CLIP text encoder and the VLM decoder in :mod:`course_lib.models.clip`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib.attention import scaled_dot_product_attention
from course_lib.checks import check_positive_ints

# HF ViTModel name prefix → ours; every other name is identical (layers.N.attention.q_proj, ... layernorm).
HF_TO_OURS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "position_embeddings",
    "embeddings.patch_embeddings.projection.": "patch_embedding.",
}


@dataclass
class ViTConfig:
    """ViT hyperparameters with HF ``ViTConfig`` field names."""
    image_size: int = 32             # input images are (num_channels, image_size, image_size)
    patch_size: int = 8              # P: each token is a P×P patch
    num_channels: int = 3            # RGB
    hidden_size: int = 64            # model width D
    num_hidden_layers: int = 2       # encoder blocks
    num_attention_heads: int = 4     # heads; hidden_size must divide evenly
    intermediate_size: int = 128     # MLP width
    layer_norm_eps: float = 1e-12    # HF ViT's default

    @property
    def num_patches(self) -> int:
        """(image_size / patch_size)², the number of patch tokens."""
        return (self.image_size // self.patch_size) ** 2

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` for a size that is not a positive int or sizes that do not fit together."""
        check_positive_ints(self, "image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers",
                            "num_attention_heads", "intermediate_size")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be a multiple of "
                             f"num_attention_heads {self.num_attention_heads}")


@dataclass
class EncoderOutput:
    """An encoder's output: last hidden states and attentions."""
    last_hidden_state: torch.Tensor                  # (B, T, D)
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, T, T) when output_attentions=True


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``images`` (B, C, H, W) → patches (B, N, C·P·P), row-major over the patch grid."""
    if images.dim() != 4 or images.shape[-1] % patch_size or images.shape[-2] % patch_size:
        raise ValueError(f"images must have shape (B, C, H, W) with H and W multiples of {patch_size}, "
                         f"got {tuple(images.shape)}")
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, H/P, P, W/P, P)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)  # (B, N, C·P·P)


class Attention(nn.Module):
    """Multi-head self-attention with q/k/v/o projections (HF ViT names) over course_lib's SDPA."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(hidden_size, hidden_size) for _ in range(4))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, D)`` → ``(attention output, weights (B, H, T, T))``."""
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.num_heads, -1).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, T, D/H)
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask)  # (B, H, T, D/H), (B, H, T, T)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, d)), weights


class MLP(nn.Module):
    """ViT feed-forward: fc1 → exact GELU → fc2 (HF ``ViTIntermediate``/``ViTOutput``)."""
    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc2(GELU(fc1 x))."""
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, as HF ViT's "gelu"


class Block(nn.Module):
    """Pre-LN Transformer block: x + MSA(LN(x)), then x + MLP(LN(x)). ``mask`` as in course_lib.attention."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, eps: float):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(hidden_size, eps=eps)
        self.attention = Attention(hidden_size, num_heads)
        self.layernorm_after = nn.LayerNorm(hidden_size, eps=eps)
        self.mlp = MLP(hidden_size, intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, D)`` → ``(block output, attention weights)``."""
        attn, weights = self.attention(self.layernorm_before(x), mask)
        x = x + attn
        return x + self.mlp(self.layernorm_after(x)), weights


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool
               ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
    """Apply ``blocks`` in turn; collect each layer's attention weights when asked."""
    attentions = []
    for block in blocks:
        x, weights = block(x, mask)
        attentions.append(weights)
    return x, (tuple(attentions) if output_attentions else None)


class ViT(nn.Module):
    """``forward(pixel_values (B, C, S, S))`` → :class:`EncoderOutput` with (B, 1 + N, D) hidden states;
    token 0 is [CLS], tokens 1… are the patches in row-major order."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        config.validate()
        self.config = config
        d = config.hidden_size
        self.patch_embedding = nn.Conv2d(config.num_channels, d, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.position_embeddings = nn.Parameter(torch.randn(1, config.num_patches + 1, d) * 0.02)
        self.layers = nn.ModuleList(
            Block(d, config.num_attention_heads, config.intermediate_size, config.layer_norm_eps)
            for _ in range(config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def check_pixels(self, pixel_values: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``pixel_values`` is ``(B, C, H, W)`` of this config's size."""
        c, s = self.config.num_channels, self.config.image_size
        if not isinstance(pixel_values, torch.Tensor) or not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be a floating-point tensor of shape (B, {c}, {s}, {s})")
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != (c, s, s):
            raise ValueError(f"pixel_values must have shape (B, {c}, {s}, {s}) (image_size={s}), "
                             f"got {tuple(pixel_values.shape)}")

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """z_0: [CLS] + patch projections + learned positions, (B, 1 + N, D)."""
        self.check_pixels(pixel_values)
        patches = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)  # (B, N, D)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # (B, 1, D)
        return torch.cat([cls, patches], dim=1) + self.position_embeddings  # (B, 1 + N, D)

    def forward(self, pixel_values: torch.Tensor, output_attentions: bool = False) -> EncoderOutput:
        """``pixel_values`` ``(B, C, H, W)`` → :class:`EncoderOutput` over [CLS] + patch tokens."""
        x, attentions = run_blocks(self.layers, self.embed(pixel_values), None, output_attentions)
        return EncoderOutput(self.layernorm(x), attentions)


def state_dict_from_hf(hf_state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an HF ``ViTModel`` state dict (without pooler) to ours with :data:`HF_TO_OURS`."""
    out = {}
    for name, tensor in hf_state_dict.items():
        if name.startswith("pooler."):
            raise ValueError(f"{name}: build the HF model with add_pooling_layer=False; ViT here has no pooler")
        for hf, ours in HF_TO_OURS.items():
            if name.startswith(hf):
                name = ours + name[len(hf):]
                break
        out[name] = tensor
    return out
