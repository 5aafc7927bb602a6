"""Parameter-efficient fine-tuning by hand (chapters 05–06), proven equal to HF ``peft``.

- :mod:`course_lib.peft.lora`: ``LoRALinear`` (LoRA, rsLoRA, DoRA), injection by module name, merge/unmerge
- :mod:`course_lib.peft.adapter`: trainable-parameter count, saving and loading only the adapter
- :mod:`course_lib.peft.shipped`: an adapter shipped in ``data/`` with its recipe and a weight hash, verified on load
- :mod:`course_lib.peft.quantized`: a frozen base kept in the GGUF's Q4_1 blocks (QLoRA-style)
- :mod:`course_lib.peft.prompt_tuning`: prompt tuning, P-Tuning's prompt encoder, prefix tuning
"""

from course_lib.peft.adapter import count_parameters, load_adapter, save_adapter
from course_lib.peft.lora import (
    DEFAULT_TARGETS,
    LoRALinear,
    disable_adapter,
    inject_lora,
    lora_layers,
    merge,
    unmerge,
)
from course_lib.peft.nf4 import dequantize_nf4, nf4_codebook, quantize_nf4
from course_lib.peft.prompt_tuning import (
    PrefixCache,
    PrefixEncoder,
    PromptEmbedding,
    PromptEncoder,
    forward_with_prefix,
    forward_with_prompts,
)
from course_lib.peft.quantized import Q4_1Linear, dequantize_q4_1, quantize_base

__all__ = ["DEFAULT_TARGETS", "LoRALinear", "PrefixCache", "PrefixEncoder", "PromptEmbedding",
           "PromptEncoder", "Q4_1Linear", "count_parameters", "dequantize_nf4", "dequantize_q4_1",
           "disable_adapter", "forward_with_prefix", "forward_with_prompts", "inject_lora", "load_adapter",
           "lora_layers", "merge", "nf4_codebook", "quantize_base", "quantize_nf4", "save_adapter", "unmerge"]
