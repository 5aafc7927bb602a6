"""``python -m bench [NAME ...]``: run benchmarks, print ratios, write bench/results.json."""

import argparse
import json
import os
import platform

import torch

from bench.harness import BENCH_DIR, format_table, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("select", nargs="*", help="run only benchmarks whose name contains one of these")
    parser.add_argument("--out", default=str(BENCH_DIR / "results.json"), help="where to write the JSON results")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads and tokenizers parallelism for every row (default 1: a shared 2-core machine)")
    args = parser.parse_args()
    results = run(args.select, threads=args.threads)
    print()
    print(format_table(results))
    machine = {"python": platform.python_version(), "torch": torch.__version__,
               "threads": args.threads,
               "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"), "cpu": platform.processor() or platform.machine(),
               "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    merged = {}
    if args.select and os.path.exists(args.out):  # a partial run updates its rows, keeps the others
        with open(args.out, encoding="utf-8") as f:
            merged = json.load(f).get("results", {})
    merged.update(results)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"machine": machine, "results": merged}, f, indent=2, ensure_ascii=False)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
