"""``python -m bench [NAME ...] [--record [PATH]] [--readme]``: run benchmarks, print ratios, save them.

Every run writes bench/results.json (not committed). ``--record`` also writes the committed file
of this machine (bench/results/cpu-<cores>core.json by default), row by row as each completes;
with names it merges the selected rows into that file. ``--readme`` rewrites README.md's
performance table from bench/results/cpu-2core.json (alone, it runs no benchmark).
"""

import argparse
import json
import os
import platform

import torch

from bench import record
from bench.harness import BENCH_DIR, format_table, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("select", nargs="*", help="run only benchmarks whose name contains one of these")
    parser.add_argument("--out", default=str(BENCH_DIR / "results.json"), help="where to write the JSON results")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads and tokenizers parallelism for every row (default 1: a shared 2-core machine)")
    parser.add_argument("--record", nargs="?", const=str(record.default_record_path()), default=None, metavar="PATH",
                        help="also write the committed results file (default: %(const)s)")
    parser.add_argument("--readme", action="store_true",
                        help=f"rewrite README.md's performance table from {record.README_RESULTS.relative_to(record.REPO)}")
    args = parser.parse_args()
    if args.readme and not args.select and args.record is None:
        return _readme()
    on_row = None
    if args.record is not None:
        machine, fresh = record.machine_description(), not args.select  # a full run drops the old rows

        def on_row(name: str, row: dict) -> None:  # re-read each time: another run may have saved rows since
            nonlocal fresh
            existing = None if fresh or not os.path.exists(args.record) else record.load(args.record)
            machine["load_end"] = [round(x, 2) for x in os.getloadavg()]
            record.save(args.record, record.merge(existing, machine, {name: row}))
            fresh = False

    results = run(args.select, threads=args.threads, on_row=on_row)
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
    print(f"\nwrote {args.out}" + (f" and {args.record}" if args.record is not None else ""))
    if args.readme:
        _readme()


def _readme() -> None:
    readme = record.REPO / "README.md"
    readme.write_text(record.rewrite_readme(readme.read_text(encoding="utf-8"), record.load(record.README_RESULTS)),
                      encoding="utf-8")
    print(f"rewrote the performance table in {readme}")


if __name__ == "__main__":
    main()
