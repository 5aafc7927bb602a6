"""The course's two shipped checkpoints as ready-to-use models and tokenizers.

This is the one entry point later chapters use (PEFT, embeddings, RAG, agents, serving)::

    from course_lib import pretrained
    model = pretrained.smollm2()                 # LlamaForCausalLM, real weights, fp32, eval mode
    tok = pretrained.smollm2_tokenizer()         # ByteLevelBPE with SmolLM2's vocab and merges
    prompt = pretrained.smollm2_chat_prompt([{"role": "user", "content": "Hi"}])
    encoder = pretrained.minilm()                # SentenceEncoder (all-MiniLM-L6-v2)

``course_lib.weights`` knows where the files are and turns them into state dicts; this module
builds the course's models and tokenizers from them. Models and tokenizers themselves know no
file locations.
"""

from __future__ import annotations

from course_lib.models.llama import LlamaForCausalLM
from course_lib.models.sentence_encoder import SentenceEncoder
from course_lib.tokenizers.bpe import ByteLevelBPE
from course_lib.tokenizers.chat_template import smollm2_chat_prompt


def smollm2() -> LlamaForCausalLM:
    """SmolLM2-135M-Instruct (dequantized Q4_1 → fp32), in eval mode."""
    return LlamaForCausalLM.from_smollm2()


def smollm2_tokenizer() -> ByteLevelBPE:
    """SmolLM2's byte-level BPE tokenizer (ids equal to transformers' GGUF tokenizer)."""
    return ByteLevelBPE.from_smollm2()


def minilm() -> SentenceEncoder:
    """all-MiniLM-L6-v2 as a sentence encoder: WordPiece → BERT → mean pooling → L2 norm."""
    return SentenceEncoder.from_minilm()


__all__ = ["minilm", "smollm2", "smollm2_chat_prompt", "smollm2_tokenizer"]
