"""Apply BPE merges to one word in O(n log n): a linked list of symbols and a heap of candidate merges.

The textbook loop (Sennrich et al. 2016 §3.2; GPT-2's ``encoder.py`` ``bpe``) scans all adjacent
pairs for the lowest-ranked one after every merge: O(n²) for a word of n symbols, 12 s for 40k
letters without a space, which one hostile request can send. HF ``tokenizers``
(``src/models/bpe/word.rs``, ``Word::merge_all`` with a ``BinaryHeap``) and tiktoken keep instead

- the symbols in a doubly linked list (arrays ``prev``/``next``), so a merge is O(1);
- a min-heap of candidate merges ``(rank, position)``: the lowest rank first and the leftmost
  on ties, the order in which the textbook loop merges (positions keep their left-to-right order);
- lazy invalidation: a merge changes the pairs of its two neighbours; their old entries stay in
  the heap and are skipped when popped, because the pair at that position no longer has that rank.

Each merge pushes at most two new entries, so at most 3n entries are pushed and popped, each in
O(log n): O(n log n) per word.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from heapq import heapify, heappop, heappush


def merge_symbols(symbols: Sequence[str], ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """Merge adjacent ``symbols`` by ``ranks`` (pair -> rank, 0 first) until no adjacent pair has a rank.

    Returns the merged symbols, left to right; the same result as repeatedly merging the
    lowest-ranked adjacent pair, leftmost on ties. Every current pair with a rank has an entry in
    the heap, so a popped entry whose position still holds a pair of that rank is the next merge.
    """
    parts = list(symbols)  # parts[i] == "": symbol i was merged into its left neighbour
    n = len(parts)
    get = ranks.get
    heap = [(rank, i) for i, pair in enumerate(zip(parts, parts[1:])) if (rank := get(pair)) is not None]
    heapify(heap)
    next_ = list(range(1, n + 1))  # next_[i] == n: symbol i is the last one
    prev = list(range(-1, n - 1))  # prev[i] == -1: symbol i is the first one
    while heap:
        rank, i = heappop(heap)
        left = parts[i]
        j = next_[i]
        if not left or j == n or get((left, parts[j])) != rank:  # stale: the pair at i changed since the push
            continue
        merged = parts[i] = left + parts[j]
        parts[j] = ""
        k = next_[i] = next_[j]
        if k < n:
            prev[k] = i
            if (rank := get((merged, parts[k]))) is not None:
                heappush(heap, (rank, i))
        if (p := prev[i]) >= 0 and (rank := get((parts[p], merged))) is not None:
            heappush(heap, (rank, p))
    return [s for s in parts if s]
