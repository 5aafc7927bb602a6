"""DeepSeek-V3-style model by hand: MLA (``mla``), DeepSeekMoE (``moe``), MTP (``mtp``), the model (``model``)."""

from .mla import KVCache, MLAConfig, MultiHeadLatentAttention, YarnConfig, kv_cache_elements_per_token
from .model import DeepSeekConfig, DeepSeekForCausalLM, DeepSeekOutput, hf_state_dict_to_ours
from .moe import DeepSeekMoE, MoEConfig, TopkRouter, max_violation, sequence_balance_loss
from .mtp import MTPModule, greedy_generate, self_speculative_generate

__all__ = [
    "DeepSeekConfig", "DeepSeekForCausalLM", "DeepSeekMoE", "DeepSeekOutput", "KVCache", "MLAConfig", "MTPModule",
    "MoEConfig", "MultiHeadLatentAttention", "TopkRouter", "YarnConfig", "greedy_generate", "hf_state_dict_to_ours",
    "kv_cache_elements_per_token", "max_violation", "self_speculative_generate", "sequence_balance_loss",
]
