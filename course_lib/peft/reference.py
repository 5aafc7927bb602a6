"""The reference side of chapters 05–06: transformers' ``LlamaForCausalLM`` with our model's weights.

Built from our state dict with ``strict=False`` then ``tie_weights()`` (seconds, instead of ~40 s
through transformers' GGUF loader); peft then wraps it exactly as it would a Hub checkpoint.
"""

from __future__ import annotations

import torch

from course_lib.models.llama import LlamaForCausalLM


def hf_llama(model: LlamaForCausalLM):
    """A transformers ``LlamaForCausalLM`` (eval mode) with ``model``'s config and (base) weights."""
    import transformers

    config = transformers.LlamaConfig(**model.config.to_dict(), attn_implementation="eager")
    with torch.device("meta"):
        ref = transformers.LlamaForCausalLM(config)
    state = {name.replace(".base_layer.", "."): t.detach().clone() for name, t in model.state_dict().items() if ".lora_" not in name}
    result = ref.load_state_dict(state, strict=False, assign=True)
    if result.unexpected_keys or set(result.missing_keys) - {"lm_head.weight"}:
        raise ValueError(f"weights do not map onto transformers' LLaMA: {result}")
    ref.tie_weights()
    ref.model.rotary_emb = type(ref.model.rotary_emb)(config=config)  # rebuild RoPE buffers off the meta device
    return ref.eval()
