"""Learn BPE merges from word counts (``ByteLevelBPE.train``): the most frequent adjacent pair, merged, repeated.

Sennrich et al. 2016 §3.1, with HF ``tokenizers``' ``BpeTrainer`` bookkeeping (``src/models/bpe/trainer.rs``):
pair counts weighted by word frequency, an index from each pair to the words that contain it, and a
max-heap of pairs with lazy updates (an entry whose count is stale is re-queued with the current
count when popped). Ties go to the smallest pair of ids, as in ``BpeTrainer``, so both learn the same
merges. Each merge rewrites only the words that contain its pair.
"""

from __future__ import annotations

import heapq
from collections import Counter


def learn_merges(words: list[list[int]], freqs: list[int], id_to_token: list[str], vocab: dict[str, int],
                 vocab_size: int) -> list[tuple[str, str]]:
    """Merges, in training order, until ``id_to_token`` has ``vocab_size`` entries or no pair occurs.

    ``words`` are symbol ids (rewritten in place as merges apply), ``freqs`` their counts;
    ``id_to_token`` and ``vocab`` (``{token: id}``) gain one entry per new token.
    """
    pair_counts: Counter = Counter()
    where: dict[tuple[int, int], set[int]] = {}
    for wi, (word, f) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += f
            where.setdefault(pair, set()).add(wi)
    heap = [(-c, pair) for pair, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(id_to_token) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if -neg != pair_counts[pair]:  # stale entry: re-queue with the current count
            if pair_counts[pair] > 0:
                heapq.heappush(heap, (-pair_counts[pair], pair))
            continue
        if -neg < 1:
            break
        a, b = pair
        new_token = id_to_token[a] + id_to_token[b]
        new_id = vocab.get(new_token, len(id_to_token))
        if new_id == len(id_to_token):
            vocab[new_token] = new_id
            id_to_token.append(new_token)
        merges.append((id_to_token[a], id_to_token[b]))
        touched = set()
        for wi in where.pop(pair, ()):
            word, f = words[wi], freqs[wi]
            for p in zip(word, word[1:]):
                pair_counts[p] -= f
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            words[wi] = merged
            for p in zip(merged, merged[1:]):
                pair_counts[p] += f
                if new_id in p:
                    where.setdefault(p, set()).add(wi)
                    touched.add(p)
        for p in touched:
            heapq.heappush(heap, (-pair_counts[p], p))
    return merges
