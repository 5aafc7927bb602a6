"""A small benchmark harness.

A benchmark is a function in a module ``bench/bench_*.py`` decorated with :func:`benchmark`.
It measures ours and its reference in the same run and returns a :class:`BenchResult`.
``python -m bench`` imports every such module, runs the benchmarks, prints a table of ratios
and writes ``bench/results.json``; ``--record`` keeps a committed copy (:mod:`bench.record`).

Every timing goes through :func:`interleaved`: warm-up calls, then rounds in which ours and the
reference alternate (the order flips every round), medians per function; load changes on a
shared machine then hit both alike. :func:`pin_threads` fixes torch's intra-op threads and the HF
tokenizers' parallelism before every benchmark, whatever was imported first or changed since.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

BENCH_DIR = Path(__file__).resolve().parent


@dataclass
class BenchResult:
    ours: float               # our measurement, in ``unit``
    reference: float          # the reference's measurement, in ``unit``
    unit: str                 # e.g. "s", "tokens/s", "QPS"
    higher_is_better: bool    # True for throughputs, False for times and errors
    target: float | None = None  # the §7 target for ``ratio`` (None: reported only)
    reference_name: str = ""  # what the reference is
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """How many times better ours is: ours/ref for throughputs, ref/ours for times."""
        if self.higher_is_better:
            return self.ours / self.reference if self.reference else float("inf")
        return self.reference / self.ours if self.ours else float("inf")

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio >= self.target


@dataclass
class _Registered:
    name: str
    fn: Callable[[], BenchResult]
    description: str


REGISTRY: dict[str, _Registered] = {}


def benchmark(name: str, description: str = "") -> Callable:
    """Register ``fn`` (no arguments, returns :class:`BenchResult`) under ``name``."""

    def register(fn: Callable[[], BenchResult]) -> Callable[[], BenchResult]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = _Registered(name, fn, description or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return register


def interleaved(fns: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median wall-clock seconds of each function in ``fns``, timed in alternating rounds.

    ``warmup`` untimed calls of each first; then ``rounds`` rounds, each calling every function
    once, in the given order on even rounds and reversed on odd ones (no function always first).
    """
    if not fns or not all(callable(f) for f in fns.values()):
        raise TypeError("fns must be a non-empty dict of name -> callable without arguments")
    if not isinstance(rounds, int) or rounds < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"rounds must be an int >= 1 and warmup an int >= 0, got {rounds!r}, {warmup!r}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns.items())
    for r in range(rounds):
        for name, fn in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def pin_threads(threads: int) -> dict:
    """Fix torch's intra-op threads and HF tokenizers' parallelism; return the settings to record."""
    import torch

    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"  # read by the Rust side per call
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    return {"torch_threads": torch.get_num_threads(), "TOKENIZERS_PARALLELISM": os.environ["TOKENIZERS_PARALLELISM"],
            "RAYON_NUM_THREADS": os.environ["RAYON_NUM_THREADS"]}


def discover() -> None:
    """Import every ``bench/bench_*.py`` so its benchmarks register themselves."""
    for info in pkgutil.iter_modules([str(BENCH_DIR)]):
        if info.name.startswith("bench_"):
            importlib.import_module(f"bench.{info.name}")


def run(select: list[str] | None = None, threads: int = 1,
        on_row: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
    """Run the registered benchmarks whose name contains any of ``select`` (all when empty).

    Threads are pinned (:func:`pin_threads`) before every benchmark and recorded in its row, with
    the UTC date, the 1-minute load average before and after, and the row's wall seconds (a shared
    machine's load is part of the result). ``on_row(name, row)`` is called as each row completes,
    so a caller can save it before the next, slower one starts. A tqdm bar counts the rows.
    """
    pin_threads(threads)  # before the benchmark modules import torch-using or tokenizer code
    discover()
    results: dict[str, dict] = {}
    names = [n for n in REGISTRY if not select or any(s in n for s in select)]
    if not names:
        raise ValueError(f"no benchmark matches {select}; known: {sorted(REGISTRY)}")
    bar = tqdm(names, desc="bench", unit="row")
    for name in bar:
        bar.set_postfix_str(name[:40])
        tqdm.write(f"running {name} ...")
        settings = pin_threads(threads)
        date, load_start, start = datetime.now(timezone.utc), os.getloadavg()[0], time.perf_counter()
        res = REGISTRY[name].fn()
        results[name] = {**asdict(res), "ratio": res.ratio, "met": res.met, "description": REGISTRY[name].description,
                         "threads": settings, "date": date.isoformat(timespec="seconds"),
                         "load_start": round(load_start, 2), "load_end": round(os.getloadavg()[0], 2),
                         "seconds": round(time.perf_counter() - start, 1)}
        if on_row is not None:
            on_row(name, results[name])
    return results


def format_table(results: dict[str, dict]) -> str:
    rows = [("benchmark", "ours", "reference", "unit", "ratio", "target", "met")]
    for name, r in results.items():
        target = "-" if r["target"] is None else f">= {r['target']:g}"
        met = {None: "-", True: "yes", False: "NO"}[r["met"]]
        rows.append((name, f"{r['ours']:.4g}", f"{r['reference']:.4g}", r["unit"], f"{r['ratio']:.2f}", target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
