"""Parameter-efficient fine-tuning by hand (chapters 05–06), proven equal to HF ``peft``.

- :mod:`course_lib.peft.lora`: ``LoRALinear`` (LoRA, rsLoRA, DoRA), injection by module name, merge/unmerge
- :mod:`course_lib.peft.adapter`: trainable-parameter count, saving and loading only the adapter
- :mod:`course_lib.peft.shipped`: an adapter shipped in ``data/`` with its recipe and a weight hash, verified on load
- :mod:`course_lib.peft.quantized`: a frozen base kept in the GGUF's Q4_1 blocks (QLoRA-style)
- :mod:`course_lib.peft.prompt_tuning`: prompt tuning, P-Tuning's prompt encoder, prefix tuning
"""
