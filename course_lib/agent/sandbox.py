"""Run untrusted Python in a separate, limited process: the agent's ``python`` tool.

``run_python(code)`` writes ``code`` to ``main.py`` in a fresh temporary directory and runs it with
``sys.executable -I`` (isolated mode: no ``PYTHON*`` variables, no user site, no script dir tricks)
inside these fences:

- resource limits set in the child (``setrlimit``): CPU seconds (``RLIMIT_CPU``), address space
  (``RLIMIT_AS``), size of any written file (``RLIMIT_FSIZE``), processes (``RLIMIT_NPROC``), open
  files (``RLIMIT_NOFILE``), no core dumps;
- a wall-clock timeout that SIGKILLs the whole process group (``start_new_session``);
- a scrubbed environment (``PATH``, ``LANG``, ``HOME``/``TMPDIR`` = the work dir, nothing else);
- a throw-away working directory, removed afterwards;
- an output cap: stdout and stderr are read incrementally and the run is killed past the cap;
- Linux namespaces through ``unshare`` where the OS allows them: a network namespace (only a downed
  loopback: no network), a PID namespace (when its first process dies the kernel kills every
  process in it, even ones that left the process group with ``setsid``), an IPC namespace (its System
  V and POSIX message queues die with it) and a mount namespace in which the child is chrooted into a
  minimal root (``sandbox_mounts``): the interpreter, the standard library and the system libraries
  read-only, a few devices, its own ``/proc``, and one size-limited tmpfs for everything it can
  write (work dir, ``/tmp``, ``/var/tmp``, ``/dev/shm``). The rest of the host's files are not there;
- no capabilities at all (bounding set emptied too) and ``no_new_privs``; as root the child also
  drops to ``nobody`` (``RLIMIT_NPROC`` applies, which it never does to uid 0);
- a seccomp filter (``sandbox_seccomp``) refusing ``memfd_create`` and System V shared memory, the
  memory ``RLIMIT_AS`` does not count.

A small supervisor (``sandbox_boot.py``: the first process, PID 1 of the namespace) builds the root,
forks the child and reports how it ended on a private pipe. Without a mount namespace there is no
private root: as root, with Python where ``nobody`` may not enter (``/root/.pyenv``), ``run_python``
refuses to run (``RuntimeError``) rather than grant the child the right to read every file; otherwise
it runs with the host's files visible, as ``describe()`` says.
See ``LIMITS`` for what this does not protect against. Needs POSIX (``resource``); namespaces and
the uid drop are Linux-only and are skipped, with the reason in ``isolation().notes``, elsewhere.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from course_lib.agent import sandbox_mounts
from course_lib.agent.sandbox_isolation import LIMITS, Isolation, describe, isolation

__all__ = ["LIMITS", "Limits", "SandboxResult", "describe", "isolation", "run_python"]

BOOT = Path(__file__).with_name("sandbox_boot.py")  # the supervisor script


@dataclass(frozen=True)
class Limits:
    """The fences of one run (defaults: quick enough for tests and a CPU-only notebook)."""

    cpu_s: int = 2              # RLIMIT_CPU: CPU seconds, then SIGXCPU (SIGKILL one second later)
    wall_s: float = 5.0         # wall-clock timeout; the whole process group is killed
    memory_mb: int = 512        # RLIMIT_AS: address space of each process
    file_mb: int = 16           # RLIMIT_FSIZE: largest file the child may write (SIGXFSZ past it)
    max_processes: int = 16     # RLIMIT_NPROC: beyond the user's other processes (the sandbox's 1-3 count)
    max_open_files: int = 64    # RLIMIT_NOFILE
    output_bytes: int = 64_000  # stdout + stderr kept; the run is killed past this
    tmp_mb: int = 64            # the private tmpfs holding all the child may write (work dir, /tmp, /dev/shm)

    def __post_init__(self):
        # not course_lib.checks.check_positive_ints: this module stays stdlib-only, it runs under a system
        # Python without torch (tests/test_agent_sandbox.py::test_the_unprivileged_path_user_namespace)
        for name in ("cpu_s", "memory_mb", "file_mb", "max_processes", "max_open_files", "output_bytes", "tmp_mb"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not isinstance(self.wall_s, (int, float)) or self.wall_s <= 0:
            raise ValueError(f"wall_s must be a positive number of seconds, got {self.wall_s!r}")

    def rlimits(self) -> list[tuple[str, int]]:
        mb = 1 << 20
        return [("RLIMIT_CPU", self.cpu_s), ("RLIMIT_AS", self.memory_mb * mb), ("RLIMIT_FSIZE", self.file_mb * mb),
                ("RLIMIT_NPROC", self.max_processes), ("RLIMIT_NOFILE", self.max_open_files), ("RLIMIT_CORE", 0)]


@dataclass(frozen=True)
class SandboxResult:
    """How a run ended. ``killed_reason`` is None for a normal exit (any exit code)."""

    stdout: str
    stderr: str
    exit_code: int | None   # the child's exit status; -N when signal N ended it; None if it never reported
    timed_out: bool         # the wall-clock timeout fired
    killed_reason: str | None
    elapsed_s: float
    truncated: bool         # output went past the cap (the run was killed)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None


def _nproc_base(iso: Isolation) -> int:
    """Processes the child's uid already has where its ``RLIMIT_NPROC`` counts them: none in a fresh user
    namespace (Linux >= 5.14 counts per user namespace, commit 21d1c5e386bc), else the host's (0 without /proc)."""
    if "--user" in iso.prefix or not Path("/proc").is_dir():
        return 0
    uid, found = (os.getuid() if iso.uid is None else iso.uid), 0
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            found += entry.stat().st_uid == uid
        except OSError:
            pass
    return found


_layout = cache(sandbox_mounts.plan)  # what the minimal root shows: the same for every run


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_python(code: str, limits: Limits | None = None) -> SandboxResult:
    """Run ``code`` as ``main.py`` in a fresh directory under ``limits``; never raises for what the code does."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a str of Python source, got {type(code).__name__}")
    limits = limits or Limits()
    iso = isolation()
    if iso.refusal:
        raise RuntimeError(f"the sandbox refuses to run here: {iso.refusal}")
    work = Path(tempfile.mkdtemp(prefix="course_sandbox_"))
    read_fd, write_fd = os.pipe()
    try:
        (work / "main.py").write_text(code, encoding="utf-8")
        if iso.uid is not None:
            os.chown(work, iso.uid, iso.gid)
        cfg = {"status_fd": write_fd, "uid": iso.uid, "gid": iso.gid, "rlimits": limits.rlimits(), "cwd": str(work),
               "root": _layout() if iso.private_root else None, "tmp_mb": limits.tmp_mb, "seccomp": iso.seccomp,
               "nproc_base": _nproc_base(iso)}
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(work), "TMPDIR": str(work)}
        start = time.perf_counter()
        proc = subprocess.Popen([*iso.prefix, sys.executable, "-I", str(BOOT), json.dumps(cfg)], cwd=work, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                pass_fds=(write_fd,), start_new_session=True)
        os.close(write_fd)
        write_fd = -1
        out, err, truncated, timed_out = _collect(proc, limits, start)
        if not (truncated or timed_out):  # both pipes closed: the child normally has ended too
            try:
                proc.wait(timeout=max(0.0, limits.wall_s - (time.perf_counter() - start)))
            except subprocess.TimeoutExpired:
                timed_out = True
        _kill_group(proc)  # stragglers (background children) go too
        proc.wait()
        elapsed = time.perf_counter() - start
        os.set_blocking(read_fd, False)
        try:
            report = os.read(read_fd, 256)
        except BlockingIOError:  # the supervisor was killed before it could report
            report = b""
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
        shutil.rmtree(work, ignore_errors=True)
    ended = json.loads(report) if report else {}
    exit_code = -ended["signal"] if "signal" in ended else ended.get("exit")
    if timed_out:
        reason = f"wall-clock timeout after {limits.wall_s:g} s"
    elif truncated:
        reason = f"output over {limits.output_bytes} bytes"
    elif exit_code is not None and exit_code < 0:
        reason = f"signal {signal.Signals(-exit_code).name}"
    elif exit_code is None:
        reason = f"supervisor ended with {proc.returncode}"
    else:
        reason = None
    return SandboxResult(out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), exit_code, timed_out, reason,
                         elapsed, truncated)


def _collect(proc: subprocess.Popen, limits: Limits, start: float) -> tuple[bytes, bytes, bool, bool]:
    """Read stdout/stderr as they come, keeping at most ``output_bytes`` in all; kill on cap or timeout."""
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    sel = selectors.DefaultSelector()
    for stream in bufs:
        sel.register(stream, selectors.EVENT_READ)
    kept = 0
    truncated = timed_out = False
    while sel.get_map():
        left = limits.wall_s - (time.perf_counter() - start)
        if left <= 0:
            timed_out = True
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            chunk = os.read(key.fd, 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            room = limits.output_bytes - kept
            bufs[key.fileobj] += chunk[:room]
            kept += min(len(chunk), room)
            if len(chunk) > room:
                truncated = True
        if truncated:
            break
        if proc.poll() is not None and sel.get_map():
            _kill_group(proc)  # the main process is gone: background children must not hold the pipes open
    if truncated or timed_out:
        _kill_group(proc)
    sel.close()
    proc.stdout.close()
    proc.stderr.close()
    return bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr]), truncated, timed_out
