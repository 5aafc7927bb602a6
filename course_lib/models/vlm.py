"""A LLaVA-style vision–language model: image patches as prefix tokens of a causal decoder.

**LLaVA** (Liu et al. 2023, "Visual Instruction Tuning", §4.1; the 2-layer GELU MLP projector of
LLaVA-1.5): the vision encoder's patch features H_v go through a projector W to the decoder's width,
and the decoder reads ``[W(H_v); embed(text)]`` with a causal mask, predicting the caption tokens.
Projector names follow HF ``LlavaMultiModalProjector`` (``linear_1``, ``linear_2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_lib import generation
from course_lib.attention import causal_mask
from course_lib.models.clip import TextConfig, TextTransformer
from course_lib.models.vit import ViT, run_blocks


@dataclass
class VLMOutput:
    """PrefixVLM's output: logits at the text positions and attentions."""
    logits: torch.Tensor                                # (B, T, V) at the text positions
    attentions: tuple[torch.Tensor, ...] | None = None  # per layer (B, H, N + T, N + T) when asked for


class Projector(nn.Module):
    """LLaVA-1.5 projector: Linear → GELU → Linear from vision width to the decoder's width."""

    def __init__(self, vision_hidden_size: int, text_hidden_size: int):
        super().__init__()
        self.linear_1 = nn.Linear(vision_hidden_size, text_hidden_size)
        self.linear_2 = nn.Linear(text_hidden_size, text_hidden_size)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """``(B, N, D_v)`` patch features → ``(B, N, D_t)`` image tokens."""
        return self.linear_2(F.gelu(self.linear_1(image_features)))  # (B, N, D_t)


class PrefixVLM(nn.Module):
    """A tiny LLaVA: vision tower → projector → image tokens as a prefix of a causal decoder.

    ``forward(pixel_values, input_ids)`` → :class:`VLMOutput` with logits (B, T, V) at the text positions,
    where the decoder saw ``[image tokens; input_ids]``. ``config.max_position_embeddings`` counts both parts.
    """

    def __init__(self, vision_model: ViT, config: TextConfig, freeze_vision: bool = True):
        super().__init__()
        self.vision_model = vision_model.requires_grad_(not freeze_vision)
        self.multi_modal_projector = Projector(vision_model.config.hidden_size, config.hidden_size)
        self.language_model = TextTransformer(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def num_image_tokens(self) -> int:
        """Image tokens placed before the text: the vision tower's patch count."""
        return self.vision_model.config.num_patches

    def image_prefix(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, H, W)`` → image tokens ``(B, N, D_t)``: patch features (no [CLS]) through the projector."""
        patches = self.vision_model(pixel_values).last_hidden_state[:, 1:]  # (B, N, D_v)
        return self.multi_modal_projector(patches)  # (B, N, D_t)

    def decode(self, prefix: torch.Tensor, input_ids: torch.Tensor, output_attentions: bool = False) -> VLMOutput:
        """The causal decoder over ``[prefix; embed(input_ids)]`` → logits ``(B, T, V)`` at the text positions."""
        lm = self.language_model
        lm.check_ids(input_ids, offset=self.num_image_tokens)
        x = torch.cat([prefix, lm.token_embedding(input_ids)], dim=1)  # (B, N + T, D_t)
        length = x.shape[1]
        x = x + lm.position_embedding.weight[:length]
        x, attentions = run_blocks(lm.layers, x, causal_mask(length, device=x.device), output_attentions)
        logits = self.lm_head(lm.final_layer_norm(x[:, self.num_image_tokens:]))  # (B, T, V)
        return VLMOutput(logits, attentions)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, output_attentions: bool = False
                ) -> VLMOutput:
        """Logits ``(B, T, V)`` at the text positions of ``[image tokens; input_ids]``."""
        return self.decode(self.image_prefix(pixel_values), input_ids, output_attentions)

    def loss(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, pad_token_id: int = 0) -> torch.Tensor:
        """Next-token cross-entropy on the caption (padding ignored)."""
        logits = self(pixel_values, input_ids[:, :-1]).logits  # (B, T-1, V)
        target = input_ids[:, 1:].masked_fill(input_ids[:, 1:] == pad_token_id, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)

    @torch.no_grad()
    def as_decoder(self, pixel_values: torch.Tensor) -> VLMDecoder:
        """The text decoder as a :class:`course_lib.generation.Decoder`, the image prefix computed once."""
        return VLMDecoder(self, self.image_prefix(pixel_values))

    def generate(self, pixel_values: torch.Tensor, bos_token_id: int, max_new_tokens: int, **kwargs) -> torch.Tensor:
        """Captions ``(B, 1 + n)`` from <bos> through :func:`course_lib.generation.generate` (greedy by default;
        ``generate``'s keyword arguments such as ``stop_tokens``, ``temperature`` pass through)."""
        start = torch.full((pixel_values.shape[0], 1), bos_token_id, dtype=torch.long, device=pixel_values.device)
        return generation.generate(self.as_decoder(pixel_values), start, max_new_tokens, **kwargs)


class VLMDecoder(generation.Recompute):
    """:class:`course_lib.generation.Decoder` over a :class:`PrefixVLM` with the image prefix fixed.

    As in :class:`~course_lib.generation.Recompute` the cache is the caption token history ``(B, t)``;
    each step re-runs the decoder over ``[prefix; history]`` (tiny model: no KV cache), so outputs
    equal the plain "append and rerun" loop.
    """

    def __init__(self, model: PrefixVLM, prefix: torch.Tensor):
        super().__init__(model)
        self.prefix = prefix  # (B, N, D_t)

    def new_cache(self, batch_size: int, max_len: int) -> None:
        """No cache yet: the first step's ``input_ids`` start the history."""
        if batch_size != self.prefix.shape[0]:
            raise ValueError(f"batch_size {batch_size} differs from the image batch {self.prefix.shape[0]}")
        return None

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """Caption ids ``(B, t)`` → logits ``(B, t, V)`` after the fixed image prefix."""
        return self.model.decode(self.prefix, ids).logits
