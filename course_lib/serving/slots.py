"""A KV cache of fixed slots, each with its own length: the memory side of continuous batching.

A plain :class:`course_lib.models.llama.KVCache` has one ``length`` for the whole batch, so rows
must start together (left padding aligns their ends). Continuous batching (Orca, Yu et al.
OSDI'22 §4.2; vLLM, Kwon et al. SOSP'23 §4.5) lets requests join and leave between decode steps,
so each row needs its own length. Here the cache holds ``S`` slots ``(L, S, H_kv, max_len, d)``:

- :meth:`SlotKVCache.prefill` runs new prompts (left-padded, one forward) into free slots;
- :meth:`SlotKVCache.decode` runs one token for each of the slots ``0..n-1`` at once: row ``b``
  writes its key/value at ``lengths[b]``, gets RoPE position ``lengths[b]`` and attends to its
  own first ``lengths[b] + 1`` keys (a key mask hides the rest of the padded ``(n, T_k)`` block);
- :meth:`SlotKVCache.move` keeps the busy slots contiguous (``0..n-1``), so a decode step works on
  a view ``[:n]`` and never copies the cache: a finished slot is refilled by the last busy one.

The model side is ``LlamaForCausalLM.decode_rows(ids, cache, position_ids, key_mask)``, which calls
``cache.update(layer, k, v)`` in every layer (tested: batched decode = each sequence alone).
"""

from __future__ import annotations

import torch

from course_lib.generation import pad_left


class SlotKVCache:
    """``slots`` independent KV regions of ``max_len`` positions for one LLaMA-style model."""

    def __init__(self, config, slots: int, max_len: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        if not isinstance(slots, int) or slots < 1 or not isinstance(max_len, int) or max_len < 2:
            raise ValueError(f"slots must be an int >= 1 and max_len an int >= 2, got {slots!r} and {max_len!r}")
        if max_len > config.max_position_embeddings:
            raise ValueError(f"max_len {max_len} exceeds the context window {config.max_position_embeddings}")
        shape = (config.num_hidden_layers, slots, config.num_key_value_heads, max_len, config.head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)    # (L, S, H_kv, max_len, d)
        self.values = torch.zeros(shape, dtype=dtype, device=device)  # (L, S, H_kv, max_len, d)
        self.lengths = torch.zeros(slots, dtype=torch.long, device=device)  # (S,) cached positions per slot
        self.slots, self.max_len = slots, max_len
        self._write = None  # the running decode step: (busy slots n, keys attended T_k)

    @classmethod
    def for_model(cls, model, slots: int, max_len: int) -> SlotKVCache:
        """A cache on ``model``'s device and dtype."""
        weight = model.output_embeddings()
        return cls(model.config, slots, max_len, dtype=weight.dtype, device=weight.device)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a decode step's ``k``/``v`` ``(n, H_kv, 1, d)`` at each slot's length; return ``(n, H_kv, T_k, d)``."""
        n, t_k = self._write
        rows, pos = torch.arange(n, device=k.device), self.lengths[:n]  # slots 0..n-1, each at its length
        self.keys[layer, rows, :, pos] = k[:, :, 0]  # (n, H_kv, d)
        self.values[layer, rows, :, pos] = v[:, :, 0]
        return self.keys[layer, :n, :, :t_k], self.values[layer, :n, :, :t_k]

    def prefill(self, model, slots: list[int], prompts: list[list[int]]) -> torch.Tensor:
        """Run new prompts into empty ``slots`` in one batched forward; logits ``(n, V)`` of their last positions.

        The prompts are left-padded into a temporary ``KVCache`` (the model's tested padded path:
        positions count real tokens, pads masked), then each row's real keys/values move to the
        start of its slot. One forward over ``n × T_max`` tokens costs far less than ``n`` forwards.
        """
        if len(slots) != len(prompts) or not slots or len(set(slots)) != len(slots) \
                or not all(0 <= s < self.slots for s in slots):
            raise ValueError(f"slots must be distinct ints in [0, {self.slots}), one per prompt, got {slots}")
        if not all(0 < len(p) < self.max_len for p in prompts):
            raise ValueError(f"each prompt must have 1..{self.max_len - 1} tokens, got {[len(p) for p in prompts]}")
        ids, mask = pad_left(prompts, pad_token_id=0)  # (n, T_max) each
        width = ids.shape[1]
        temp = model.new_cache(len(prompts), width)
        logits, _ = model.decode_step(ids.to(self.keys.device), temp, mask.to(self.keys.device))  # (n, V)
        for row, (slot, prompt) in enumerate(zip(slots, prompts)):
            start = width - len(prompt)
            self.keys[:, slot, :, :len(prompt)] = temp.keys[:, row, :, start:]  # (L, H_kv, T_b, d)
            self.values[:, slot, :, :len(prompt)] = temp.values[:, row, :, start:]
            self.lengths[slot] = len(prompt)
        return logits

    def decode(self, model, input_ids: torch.Tensor) -> torch.Tensor:
        """One token ``(n, 1)`` for each of slots ``0..n-1``, each at its own position; logits ``(n, V)``."""
        n = input_ids.shape[0]
        pos = self.lengths[:n]  # (n,)
        if input_ids.shape[1] != 1 or not 0 < n <= self.slots or bool((pos >= self.max_len).any()):
            raise ValueError(f"decode takes (n, 1) ids for n <= {self.slots} slots with room left, "
                             f"got {tuple(input_ids.shape)} at lengths {pos.tolist()}")
        t_k = int(pos.max()) + 1
        self._write = (n, t_k)
        key_mask = torch.arange(t_k, device=pos.device)[None, :] <= pos[:, None]  # (n, T_k): own keys only
        logits = model.decode_rows(input_ids, self, pos[:, None], key_mask[:, None, None, :])  # (n, V)
        self.lengths[:n] += 1
        return logits

    def move(self, src: int, dst: int) -> None:
        """Copy slot ``src`` (keys, values, length) over slot ``dst`` and free ``src``."""
        n = int(self.lengths[src])
        self.keys[:, dst, :, :n] = self.keys[:, src, :, :n]
        self.values[:, dst, :, :n] = self.values[:, src, :, :n]
        self.lengths[dst], self.lengths[src] = n, 0

    def free(self, slot: int) -> None:
        """Mark ``slot`` empty (its stale keys are never attended: the key mask stops at the length)."""
        self.lengths[slot] = 0

    def nbytes(self) -> int:
        """Bytes held by the key and value buffers."""
        return self.keys.nbytes + self.values.nbytes
