"""The key/value cache every attention decoder of the course shares (LLaMA, GPT-2, T5's decoder).

Autoregressive decoding computes token t's keys and values once and keeps them: step t then
runs one query against the ``t`` cached keys instead of recomputing the whole prefix (O(T) per
token instead of O(T²)). :class:`KVCache` preallocates ``(L, B, H_kv, max_len, d)`` and writes each
step in place, like transformers' ``StaticCache``, which also reads its shape from the config's
generic names: ``num_hidden_layers``, ``num_key_value_heads`` (default ``num_attention_heads``),
``head_dim`` (default ``hidden_size // num_attention_heads``) and, when the model has one,
``max_position_embeddings`` (``GPTConfig`` provides them as properties, as HF's ``attribute_map``
does; T5's decoder passes its own depth). All rows share one ``length``: left padding aligns their ends.
"""

from __future__ import annotations

import torch


class KVCache:
    """Preallocated key/value cache: per layer ``(B, n_kv_heads, max_len, head_dim)`` tensors.

    Decoding writes the new keys and values in place at ``length`` instead of concatenating,
    so a step costs no reallocation. The model calls :meth:`advance` after its last layer.
    """

    def __init__(self, config, batch_size: int, max_len: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        if batch_size <= 0 or max_len <= 0:
            raise ValueError(f"batch_size and max_len must be positive, got {batch_size} and {max_len}")
        context = getattr(config, "max_position_embeddings", None)
        if context is not None and max_len > context:
            raise ValueError(f"max_len {max_len} exceeds the context window {context}")
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        shape = (config.num_hidden_layers, batch_size, kv_heads, max_len, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)    # (L, B, H_kv, max_len, d)
        self.values = torch.zeros(shape, dtype=dtype, device=device)  # (L, B, H_kv, max_len, d)
        self.batch_size, self.max_len, self.length = batch_size, max_len, 0

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``/``v`` ``(B, H_kv, T, d)`` after the cached ones; return all ``(B, H_kv, length+T, d)``."""
        end = self.length + k.shape[2]
        self.keys[layer, :, :, self.length:end] = k
        self.values[layer, :, :, self.length:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Count ``n`` more cached positions (the model calls it after its last layer)."""
        self.length += n

    def nbytes(self) -> int:
        """Bytes held by the key and value buffers."""
        return self.keys.nbytes + self.values.nbytes


def cached_length(cache: KVCache | None, input_ids: torch.Tensor, context: int | None,
                  context_name: str = "max_position_embeddings") -> int:
    """Positions already in ``cache`` (0 without one), after checking that ``input_ids`` ``(B, T)`` fit.

    ``past + T`` must stay within the model's ``context`` (None: no limit) and the cache's
    ``batch_size × max_len``; raises ``ValueError`` otherwise.
    """
    past = 0 if cache is None else cache.length
    total = past + input_ids.shape[1]
    if context is not None and total > context:
        raise ValueError(f"sequence of {total} tokens exceeds the context window of {context} ({context_name})")
    if cache is not None and (total > cache.max_len or cache.batch_size != input_ids.shape[0]):
        raise ValueError(f"cache for batch {cache.batch_size} × {cache.max_len} positions cannot take "
                         f"{input_ids.shape[0]} × {total}")
    return past
