"""The Python sandbox (``course_lib.agent.sandbox``) against hostile code, part 1: the resource limits
(CPU, wall clock, memory, processes, file size, output), its report, its arguments and chapter 10's table.
Each attack is stopped or contained, the parent survives, and the time each takes to stop is printed
(``pytest -s``) as a table. Part 2, the isolation (files, sockets, secrets, namespaces), is
tests/test_agent_sandbox_isolation.py.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from course_lib.agent.sandbox import LIMITS, Limits, describe, isolation, run_python
from tests.sandbox_attacks import (
    QUICK,
    REPO,
    attack,
    stop_time_table,  # noqa: F401  (autouse: prints the stop-time table)
    stray_processes,
)

if not hasattr(os, "fork"):
    pytest.skip("the sandbox needs POSIX", allow_module_level=True)


def test_normal_run_reports_output_and_exit_code():
    r = run_python("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert (r.stdout, r.stderr, r.exit_code, r.killed_reason, r.timed_out, r.truncated) == ("out\n", "err\n", 3, None,
                                                                                             False, False)
    r = run_python("1 / 0")
    assert r.exit_code == 1 and r.stderr.strip().endswith("ZeroDivisionError: division by zero")
    assert 'File "main.py", line 1' in r.stderr and "exec(" not in r.stderr  # only the learner's frames
    r = run_python("import os, time\nos.close(1)\nos.close(2)\ntime.sleep(0.5)\nos._exit(4)")
    assert (r.exit_code, r.killed_reason) == (4, None)  # closing its output does not end a run early


def test_resource_limits_are_set_in_the_child():
    names = ["RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_NPROC"]
    r = run_python(f"import resource\nfor name in {names!r}:\n    print(*resource.getrlimit(getattr(resource, name)))")
    got = dict(zip(names, [tuple(map(int, line.split())) for line in r.stdout.splitlines()]))
    mb = 1 << 20
    assert got["RLIMIT_CPU"] == (2, 3)  # Limits() default: SIGXCPU at 2 s, SIGKILL at 3 s
    assert got["RLIMIT_AS"] == (512 * mb,) * 2 and got["RLIMIT_FSIZE"] == (16 * mb,) * 2
    assert got["RLIMIT_NOFILE"] == (64, 64) and got["RLIMIT_CORE"] == (0, 0)
    soft, hard = got["RLIMIT_NPROC"]
    assert soft == hard and 16 <= soft < 16 + 1000  # 16 more than the user's processes when the child started


def test_infinite_loop_hits_the_cpu_limit():
    r = attack("infinite loop (CPU)", "while True:\n    pass", dataclasses.replace(QUICK, wall_s=3.0))
    assert r.exit_code in (-signal.SIGXCPU, -signal.SIGKILL) or r.timed_out, r


def test_sleeping_forever_hits_the_wall_clock():
    r = attack("sleep forever (wall clock)", "import time\ntime.sleep(60)")
    assert r.timed_out and r.killed_reason == "wall-clock timeout after 1.5 s" and r.elapsed_s < 3


def test_memory_bomb_is_refused():
    # wall clock 5 s: touching 128 MB takes ~1 s when 8 engineers share 2 cores; RLIMIT_AS must be what stops it
    r = attack("memory bomb", "chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))",
               dataclasses.replace(QUICK, memory_mb=128, wall_s=5.0))
    assert r.exit_code == 1 and "MemoryError" in r.stderr, r


def test_fork_bomb_is_contained_and_leaves_no_process():
    code = ("import os\nprint(os.getcwd(), flush=True)\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass\n")
    iso = isolation()
    if not (iso.nproc_enforced or iso.pid_namespace):
        pytest.skip("neither RLIMIT_NPROC nor a PID namespace applies here: a fork bomb would hit the machine; "
                    + "; ".join(iso.notes))
    r = attack("fork bomb", code)
    assert r.timed_out or r.exit_code is not None
    marker = r.stdout.splitlines()[0]
    assert "course_sandbox_" in marker and stray_processes(marker) == []
    assert not Path(marker).exists()  # the throw-away directory is gone


def test_one_gigabyte_write_stops_at_the_file_size_limit():
    code = ("import os\ntry:\n    with open('big.bin', 'wb') as f:\n        for _ in range(1024):\n"
            "            f.write(bytes(1 << 20))\nexcept OSError:\n    print(os.path.getsize('big.bin'))\n    raise\n")
    r = attack("1 GB write", code)  # Python ignores SIGXFSZ, so the write fails with EFBIG instead
    assert r.exit_code == 1 and "File too large" in r.stderr, r
    assert int(r.stdout) <= QUICK.file_mb << 20


def test_hundred_megabyte_print_is_cut_at_the_output_cap():
    r = attack("100 MB print", "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * (1 << 20))")
    assert r.truncated and r.killed_reason == "output over 64000 bytes"
    assert len(r.stdout) + len(r.stderr) <= QUICK.output_bytes and r.elapsed_s < QUICK.wall_s


def test_isolation_is_reported_and_limits_are_explained():
    iso = isolation()
    print(iso)
    if os.geteuid() == 0:
        assert iso.uid is not None and iso.nproc_enforced  # root: RLIMIT_NPROC only works after the uid drop
    if sys.platform.startswith("linux") and os.geteuid() == 0:  # this course's CI: every fence is available
        assert iso.network and iso.pid_namespace and iso.private_root and iso.seccomp, iso.notes
        assert iso.refusal is None
    for topic in ("kernel", "side channel", "world-readable", "/tmp", "RLIMIT_NPROC"):
        assert topic in LIMITS
    text = describe()
    assert text.endswith(LIMITS) and all(note in text for note in iso.notes)
    assert ("[x] network namespace" if iso.network else "[ ] network namespace") in text


NOT_ATTACKS = {"test_normal_run_reports_output_and_exit_code", "test_resource_limits_are_set_in_the_child",
               "test_isolation_is_reported_and_limits_are_explained", "test_bad_arguments_name_themselves",
               "test_the_chapter_table_names_real_tests"}


def test_the_chapter_table_names_real_tests():
    """Chapter 10's table of sandbox limits is built from these tests (both files): each row names one that
    exists, and every attack tested here has a row."""
    cells = json.loads((REPO / "chapters" / "10_agent.ipynb").read_text(encoding="utf-8"))["cells"]
    table = [c for c in cells if c["cell_type"] == "markdown" and "| 攻击 (attack) |" in "".join(c["source"])]
    assert len(table) == 1
    rows = [line for line in "".join(table[0]["source"]).splitlines() if line.startswith("| ") and "---" not in line]
    named = {name for row in rows[1:] for name in re.findall(r"`(test_\w+)`", row.split(" | ")[-1])}
    tests = {node.name for path in (REPO / "tests").glob("test_agent_sandbox*.py")
             for node in ast.parse(path.read_text(encoding="utf-8")).body
             if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    assert named <= tests, named - tests
    assert tests - NOT_ATTACKS <= named, (tests - NOT_ATTACKS) - named
    unprotected = [row for row in rows if "| **否** |" in row]
    assert len(unprotected) >= 3 and any("内核" in row for row in unprotected)  # the honest rows stay


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="code must be a str"):
        run_python(b"print(1)")
    with pytest.raises(ValueError, match="cpu_s must be a positive int"):
        Limits(cpu_s=0)
    with pytest.raises(ValueError, match="wall_s must be a positive number"):
        Limits(wall_s=-1)
