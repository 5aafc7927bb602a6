"""Tokenizers written from scratch: byte-level BPE (LLaMA/GPT family) and WordPiece (BERT).

Byte-level BPE (:mod:`.bpe`), WordPiece (:mod:`.wordpiece`), a word-level tokenizer (:mod:`.word`), padded
batches (:mod:`.batch`) and chat templates (:mod:`.chat_template`).
"""

from course_lib.tokenizers.batch import BatchEncoding, pad_batch
from course_lib.tokenizers.bpe import GPT2_PATTERN, ByteLevelBPE, bytes_to_unicode
from course_lib.tokenizers.chat_template import encode_chat, render_chat
from course_lib.tokenizers.word import WordTokenizer
from course_lib.tokenizers.wordpiece import Encoding, WordPieceTokenizer

__all__ = ["BatchEncoding", "ByteLevelBPE", "Encoding", "GPT2_PATTERN", "WordPieceTokenizer",
           "WordTokenizer", "bytes_to_unicode", "encode_chat", "pad_batch", "render_chat"]
