"""Post-training by hand (chapter 04d): SFT, DPO and GRPO, proven equal to TRL's losses.

- :mod:`course_lib.posttrain.logprobs`: per-token and per-sequence log-probabilities of completions
- :mod:`course_lib.posttrain.sft`: chat rendering with an assistant-only loss mask, packing, the SFT loss
- :mod:`course_lib.posttrain.dpo`: the DPO loss (and IPO) with the LoRA-off model as reference
- :mod:`course_lib.posttrain.grpo`: group-relative advantages, the clipped ratio, the k3 KL, the GRPO loss
- :mod:`course_lib.posttrain.rewards`: a checkable arithmetic task with rule-based rewards
- :mod:`course_lib.posttrain.rollout`: sampling groups, one GRPO / SFT step, held-out evaluation
- :mod:`course_lib.posttrain.behaviour_cloning`: LoRA SFT on chat demonstrations (the loop chapters 10–11 use)
"""
