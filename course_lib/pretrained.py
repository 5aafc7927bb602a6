"""The course's two shipped checkpoints as ready-to-use models and tokenizers: the one place that builds them.

This is the one entry point later chapters use (PEFT, embeddings, RAG, agents, serving)::

    from course_lib import pretrained
    model = pretrained.smollm2()                 # LlamaForCausalLM, real weights, fp32, eval mode
    tok = pretrained.smollm2_tokenizer()         # ByteLevelBPE with SmolLM2's vocab and merges
    prompt = pretrained.smollm2_chat_prompt([{"role": "user", "content": "Hi"}])
    encoder = pretrained.minilm()                # SentenceEncoder (all-MiniLM-L6-v2)
    model = pretrained.smollm2(device=cfg.device)   # either one on a chosen device (default: the CPU)

:mod:`course_lib.weights` knows where the files are and turns them into state dicts, configs and
tokenizer data; this module builds the course's models and tokenizers from them through the same
``from_hf`` a transformers user would call. Models and tokenizers themselves know no file locations
(``tests/test_architecture.py`` keeps it so).
"""

from __future__ import annotations

import json
from functools import lru_cache

import torch

from course_lib import weights
from course_lib.checks import check_device
from course_lib.models.bert import BertModel
from course_lib.models.llama import LlamaForCausalLM
from course_lib.models.sentence_encoder import SentenceEncoder
from course_lib.tokenizers.bpe import ByteLevelBPE
from course_lib.tokenizers.chat_template import render_chat
from course_lib.tokenizers.wordpiece import WordPieceTokenizer


def smollm2(device: str | torch.device = "cpu") -> LlamaForCausalLM:
    """SmolLM2-135M-Instruct (dequantized Q4_1 → fp32), in eval mode, on ``device``."""
    device = check_device(device)
    return LlamaForCausalLM.from_hf(weights.smollm2_config(), weights.smollm2_state_dict()).to(device)


def smollm2_tokenizer() -> ByteLevelBPE:
    """SmolLM2's byte-level BPE tokenizer: 49,152 tokens, 48,900 merges, 17 specials (ids equal to transformers')."""
    return ByteLevelBPE.from_gguf_data(weights.smollm2_tokenizer_data())


@lru_cache(maxsize=1)
def smollm2_chat_template() -> str:
    """The Jinja2 chat template stored in SmolLM2's GGUF metadata."""
    return weights.smollm2_tokenizer_data()["chat_template"]


def smollm2_chat_prompt(messages: list[dict], add_generation_prompt: bool = True) -> str:
    """SmolLM2's prompt for ``messages`` (its template adds the default system message when none is given)."""
    return render_chat(messages, smollm2_chat_template(), add_generation_prompt)


def minilm(device: str | torch.device = "cpu") -> SentenceEncoder:
    """all-MiniLM-L6-v2 as a sentence encoder: WordPiece → BERT → mean pooling → L2 norm (max_seq_length 256), on ``device``."""
    device = check_device(device)
    path = weights.minilm_path()
    model = BertModel.from_hf(weights.minilm_config(), weights.minilm_state_dict()).to(device)
    st_conf = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    return SentenceEncoder(model, WordPieceTokenizer.from_pretrained(path), st_conf["max_seq_length"])


__all__ = ["minilm", "smollm2", "smollm2_chat_prompt", "smollm2_chat_template", "smollm2_tokenizer"]
