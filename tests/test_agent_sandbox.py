"""The Python sandbox (``course_lib.agent.sandbox``) against hostile code: each attack is stopped or
contained, the parent survives, and the time each takes to stop is printed (``pytest -s``) as a table.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.agent.sandbox import LIMITS, Limits, describe, isolation, run_python

if not hasattr(os, "fork"):
    pytest.skip("the sandbox needs POSIX", allow_module_level=True)

QUICK = Limits(cpu_s=1, wall_s=1.5, memory_mb=256, file_mb=8, max_processes=8, output_bytes=64_000)
STOP_TIMES: dict[str, tuple[float, str]] = {}


@pytest.fixture(scope="module", autouse=True)
def stop_time_table():
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


def test_writes_outside_the_work_dir_are_refused(tmp_path):
    iso = isolation()
    if iso.uid is None:
        pytest.skip("the child runs as your own user, so it may write your files (see LIMITS)")
    repo_file = Path(__file__).resolve().parent.parent / "sandbox_escape.txt"
    targets = [tmp_path / "escape.txt", repo_file]
    code = (f"for path in {[str(t) for t in targets]!r}:\n    try:\n        open(path, 'w').write('x')\n"
            "        print('WROTE', path)\n    except OSError as e:\n        print('refused', type(e).__name__)\n")
    r = attack("write outside its dir", code)
    # a path under /tmp is hidden by the child's private /tmp (a clone in /tmp included); elsewhere nobody may
    # not write
    def refusal(path: Path) -> str:
        hidden = iso.private_tmp and path.resolve().is_relative_to("/tmp")
        return "refused FileNotFoundError" if hidden else "refused PermissionError"

    parent_tmp, repo = r.stdout.splitlines()
    assert parent_tmp == refusal(targets[0]), r
    assert repo == refusal(repo_file), r
    assert not any(t.exists() for t in targets)


def test_writes_to_world_writable_dirs_never_reach_the_host():
    iso = isolation()
    if not iso.private_tmp:
        pytest.skip("no mount namespace here: files the child leaves in /tmp stay (see LIMITS); " + "; ".join(iso.notes))
    targets = [f"{d}/course_sandbox_escape_{os.getpid()}.txt" for d in ("/tmp", "/var/tmp", "/dev/shm")]
    code = f"for path in {targets!r}:\n    open(path, 'w').write('x')\nprint('wrote', len({targets!r}))\n"
    r = attack("write to /tmp, /dev/shm", code)
    assert r.stdout == "wrote 3\n", r  # the child sees writable directories ...
    assert not any(Path(t).exists() for t in targets)  # ... private ones: nothing reaches the host


def test_parent_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("COURSE_SECRET", "hunter2")
    code = ("import os\nprint(sorted(os.environ))\nprint(os.environ.get('COURSE_SECRET'))\n"
            f"try:\n    print(b'hunter2' in open('/proc/{os.getpid()}/environ', 'rb').read())\n"
            "except OSError as e:\n    print(type(e).__name__)\n")
    r = attack("read parent's secrets", code)
    names, secret, proc_read = r.stdout.splitlines()
    assert names == "['HOME', 'LANG', 'PATH', 'TMPDIR']" and secret == "None"
    iso = isolation()
    if iso.private_tmp:
        assert proc_read == "FileNotFoundError"  # its own /proc shows only the sandbox's processes
    elif iso.uid is not None:
        assert proc_read == "PermissionError"  # nobody may not read root's /proc/<pid>/environ
    else:
        assert proc_read == "True"  # same user, host /proc: readable (see LIMITS)


def test_socket_to_a_loopback_server_fails():
    iso = isolation()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('refused', type(e).__name__)\n")
    try:
        r = attack("socket to loopback", code)
    finally:
        server.close()
    print("network fence:", "network namespace" if iso.network else iso.notes)
    if not iso.network:
        assert any("network namespace" in note for note in iso.notes)
        pytest.skip("no network namespace here, the connection may succeed: " + "; ".join(iso.notes))
    assert r.stdout.startswith("refused"), r


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
        assert iso.network and iso.pid_namespace and iso.private_tmp, iso.notes
    for topic in ("kernel", "side channel", "world-readable", "/tmp", "RLIMIT_NPROC"):
        assert topic in LIMITS
    text = describe()
    assert text.endswith(LIMITS) and all(note in text for note in iso.notes)
    assert ("[x] network namespace" if iso.network else "[ ] network namespace") in text


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="code must be a str"):
        run_python(b"print(1)")
    with pytest.raises(ValueError, match="cpu_s must be a positive int"):
        Limits(cpu_s=0)
    with pytest.raises(ValueError, match="wall_s must be a positive number"):
        Limits(wall_s=-1)


UNPRIVILEGED = """
import socket
from course_lib.agent.sandbox import Limits, isolation, run_python
iso = isolation()
print(iso.uid, iso.network, iso.pid_namespace, iso.private_tmp)
print(run_python("import os; print(os.getuid())").stdout.strip())
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
r = run_python(f"import socket; socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=1)")
print(r.stderr.strip().splitlines()[-1])
print(run_python("import os\\nwhile True:\\n    try: os.fork()\\n    except OSError: pass", Limits(wall_s=1.0)).killed_reason)
"""


def test_the_unprivileged_path_user_namespace(tmp_path):
    """As a normal user (a learner's laptop) the fences come from a user namespace: run this module's
    sandbox as ``nobody`` with a system Python that ``nobody`` may execute, where root can arrange it."""
    python = Path("/usr/bin/python3")
    if os.geteuid() != 0 or not python.exists():
        pytest.skip("needs root (to become nobody) and /usr/bin/python3")
    repo = Path(__file__).resolve().parent.parent
    probe = subprocess.run([str(python), "-I", "-c", "print(1)"], user=65534, group=65534, extra_groups=[],
                           capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin:/bin"})
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {python}: {probe.stderr.strip()}")
    done = subprocess.run([str(python), "-c", UNPRIVILEGED], user=65534, group=65534, extra_groups=[], cwd="/",
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo)},
                          timeout=60)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0] == "None True True True", (done.stdout, done.stderr)
    assert lines[1] == "0"  # root inside its own user namespace, nobody outside it
    assert lines[2] == "OSError: [Errno 101] Network is unreachable"
    assert lines[3] == "wall-clock timeout after 1 s"
