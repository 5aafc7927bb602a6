"""``CiteFirst``: a logits processor that opens a grounded answer with a citation ``[n]`` (chapter 09).

A 135M model told to cite "like [1]" rarely writes a citation at all. This processor makes the format
one it can follow: it opens the reply with ``[``, lets the model choose only among the source numbers,
closes the bracket, and then lets it write freely (citation format as in Gao et al. 2023, ALCE). It is
the same hook as the tool-call grammar (:mod:`course_lib.constrained.tool_calls`): ``(ids, logits) ->
logits`` with forbidden tokens at ``-inf``.
"""

from __future__ import annotations

import torch


class CiteFirst:
    """Logits processor ``(ids (B, T), logits (B, V)) -> logits``: the reply opens with ``[n]``, 1 ≤ n ≤ ``n_sources``.

    Step 0 allows only ``[``, step 1 only the digits ``1 … n_sources``, step 2 only tokens that start
    with ``]`` (``]``, ``],``, ``].`` …); later steps are untouched. The step is counted from the
    length of ``ids`` at the first call, so use one instance per reply (``LocalChatModel(constraint=...)``
    builds one per reply).
    """

    def __init__(self, tokenizer, n_sources: int):
        if isinstance(n_sources, bool) or not isinstance(n_sources, int) or not 1 <= n_sources <= 9:
            raise ValueError(f"n_sources must be an int in [1, 9] (one digit), got {n_sources!r}")
        pieces = [tokenizer.encode_ordinary(t) for t in ["[", *map(str, range(1, n_sources + 1))]]
        if any(len(p) != 1 for p in pieces):
            raise ValueError("the tokenizer must encode '[' and each digit as one token")
        special = set(getattr(tokenizer, "special_tokens", {}).values())
        close = [i for i, t in tokenizer.id_to_token.items() if t.startswith("]") and "[" not in t and i not in special]
        self.steps = [[pieces[0][0]], [p[0] for p in pieces[1:]], sorted(close)]
        self.start: int | None = None

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = ids.shape[1]
        step = ids.shape[1] - self.start
        if step >= len(self.steps):
            return logits
        masked = torch.full_like(logits, float("-inf"))                  # (B, V)
        allowed = self.steps[step]
        masked[:, allowed] = logits[:, allowed]
        return masked
