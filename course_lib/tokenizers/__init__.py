"""Tokenizers written from scratch: byte-level BPE (LLaMA/GPT family) and WordPiece (BERT)."""
