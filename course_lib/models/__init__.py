"""From-scratch models, one architecture per module; parameter names follow the HF checkpoints.

Names are imported lazily (``from course_lib import models; models.LlamaForCausalLM``
imports only :mod:`.llama`): a chapter that builds one architecture does not load the other fourteen.
"""

from course_lib.lazy import lazy_exports

_HOME = {"BertConfig": "bert", "BertForMaskedLM": "bert", "BertModel": "bert", "CLIP": "clip",
         "CLIPConfig": "clip", "GPT": "gpt", "GPTConfig": "gpt", "LSTM": "rnn", "LSTMLMConfig": "rnn",
         "LSTMLanguageModel": "rnn", "LinearAttention": "linear_attention",
         "LinearAttentionConfig": "linear_attention", "LlamaConfig": "llama", "LlamaForCausalLM": "llama",
         "LlamaModel": "llama", "MambaMixer": "ssm", "PrefixVLM": "vlm", "Projector": "vlm",
         "RWKVConfig": "linear_attention", "RWKVTimeMix": "linear_attention", "SelectiveSSMConfig": "ssm",
         "SentenceEncoder": "sentence_encoder", "T5Config": "t5", "T5ForConditionalGeneration": "t5",
         "T5Model": "t5", "ViT": "vit", "ViTConfig": "vit", "mean_pooling": "sentence_encoder"}
__all__ = sorted(_HOME)

__getattr__ = lazy_exports(__name__, _HOME)
