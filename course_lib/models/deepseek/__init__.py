"""DeepSeek-V3-style model by hand: MLA (``mla``), DeepSeekMoE (``moe``), MTP (``mtp``), the model (``model``)."""

from .mla import MLACache, MLAConfig, MultiHeadLatentAttention, YarnConfig, kv_cache_elements_per_token
from .model import DeepSeekCache, DeepSeekConfig, DeepSeekForCausalLM, DeepSeekOutput, state_dict_from_hf
from .moe import DeepSeekMoE, MoEConfig, TopkRouter, max_violation, sequence_balance_loss
from .mtp import MTPModule, greedy_generate, self_speculative_generate

__all__ = [
    "DeepSeekCache", "DeepSeekConfig", "DeepSeekForCausalLM", "DeepSeekMoE", "DeepSeekOutput", "MLACache", "MLAConfig", "MTPModule",
    "MoEConfig", "MultiHeadLatentAttention", "TopkRouter", "YarnConfig", "greedy_generate", "state_dict_from_hf",
    "kv_cache_elements_per_token", "max_violation", "self_speculative_generate", "sequence_balance_loss",
]
