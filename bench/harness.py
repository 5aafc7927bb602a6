"""A small benchmark harness.

A benchmark is a function in a module ``bench/bench_*.py`` decorated with :func:`benchmark`.
It measures ours and its reference in the same run and returns a :class:`BenchResult`.
``python -m bench`` imports every such module, runs the benchmarks, prints a table of ratios
and writes ``bench/results.json``.
"""

from __future__ import annotations

import importlib
import pkgutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


def time_call(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def discover() -> None:
    """Import every ``bench/bench_*.py`` so its benchmarks register themselves."""
    for info in pkgutil.iter_modules([str(BENCH_DIR)]):
        if info.name.startswith("bench_"):
            importlib.import_module(f"bench.{info.name}")


def run(select: list[str] | None = None) -> dict[str, dict]:
    """Run the registered benchmarks whose name contains any of ``select`` (all when empty)."""
    discover()
    results: dict[str, dict] = {}
    names = [n for n in REGISTRY if not select or any(s in n for s in select)]
    if not names:
        raise ValueError(f"no benchmark matches {select}; known: {sorted(REGISTRY)}")
    for name in names:
        print(f"running {name} ...", flush=True)
        res = REGISTRY[name].fn()
        results[name] = {**asdict(res), "ratio": res.ratio, "met": res.met, "description": REGISTRY[name].description}
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
