"""Load ``torch.nn.Transformer`` weights into :class:`course_lib.transformer.Transformer` (re-exported there).

Our names differ from torch's only in the short table :data:`TORCH_TRANSFORMER_NAMES`; the attention
weights go through :func:`course_lib.attention.mha_state_from_torch` (torch packs q, k, v in one matrix).
"""

from __future__ import annotations

import torch

from course_lib.attention import mha_state_from_torch

#: per layer, ours -> torch.nn.Transformer{Encoder,Decoder}Layer
TORCH_TRANSFORMER_NAMES = {
    "self_attn": "self_attn", "cross_attn": "multihead_attn",
    "feed_forward.linear1": "linear1", "feed_forward.linear2": "linear2",
    "norm1": "norm1", "norm2": "norm2", "norm3": "norm3",
}


def state_from_torch_transformer(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``torch.nn.Transformer`` state dict onto our ``encoder.*``/``decoder.*`` names.

    (``nn.Transformer`` has no embeddings, positional encoding or generator: those keep ours.)
    """
    out: dict[str, torch.Tensor] = {}
    for key in ("encoder.norm.weight", "encoder.norm.bias", "decoder.norm.weight", "decoder.norm.bias"):
        if key not in state:
            raise ValueError(f"not a torch.nn.Transformer state dict: missing {key!r}")
        out[key] = state[key]
    layer_prefixes = sorted({".".join(k.split(".")[:3]) for k in state if ".layers." in k})
    for prefix in layer_prefixes:  # e.g. "encoder.layers.0"
        for ours, theirs in TORCH_TRANSFORMER_NAMES.items():
            head = f"{prefix}.{theirs}."
            sub = {k[len(head):]: v for k, v in state.items() if k.startswith(head)}
            if ours.endswith("attn") and sub:
                sub = mha_state_from_torch(sub)
            out.update({f"{prefix}.{ours}.{k}": v for k, v in sub.items()})
    return out
