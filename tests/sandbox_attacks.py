"""Shared by tests/test_agent_sandbox*.py: quick limits, the attack runner and the stop-time table."""

from __future__ import annotations

from pathlib import Path

import pytest

from course_lib.agent.sandbox import Limits, run_python

REPO = Path(__file__).resolve().parent.parent
QUICK = Limits(cpu_s=1, wall_s=1.5, memory_mb=256, file_mb=8, max_processes=8, output_bytes=64_000)
STOP_TIMES: dict[str, tuple[float, str]] = {}


@pytest.fixture(scope="module", autouse=True)
def stop_time_table():
    """Print how long each attack took to stop (``pytest -s``), once per test module."""
    yield
    print("\n| attack | stopped after (s) | how |\n|---|---|---|")
    for name, (seconds, how) in STOP_TIMES.items():
        print(f"| {name} | {seconds:.2f} | {how} |")


def attack(name: str, code: str, limits: Limits = QUICK):
    result = run_python(code, limits)
    last = (result.stderr.strip() or result.stdout.strip()).splitlines() or [""]
    STOP_TIMES[name] = (result.elapsed_s, result.killed_reason or f"exit {result.exit_code}: {last[-1][:60]}")
    assert run_python("print(6 * 7)").stdout == "42\n"  # the parent and the sandbox still work
    return result


def stray_processes(marker: str) -> list[int]:
    """Host pids whose command line mentions ``marker`` (the run's work dir)."""
    pids = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            if marker.encode() in (p / "cmdline").read_bytes():
                pids.append(int(p.name))
        except OSError:
            pass
    return pids

