"""What fences this machine allows the sandbox (``isolation()``), in words (``describe()``), and what no fence
covers (``LIMITS``).

``isolation()`` probes ``unshare`` once: network + IPC + mount + PID namespaces (the full sandbox: no
network, a minimal private root, every process killed with the first), then network + PID, then the
network alone; as a normal user each inside a user namespace (``--user --map-root-user``). As root it
picks ``nobody`` for the child. Without a mount namespace, as root, with Python where ``nobody`` may
not enter (pyenv under a 0700 ``/root``), it records a ``refusal``: the old way out, letting the child
keep ``CAP_DAC_READ_SEARCH``, let it read every file on the machine.
"""

from __future__ import annotations

import os
import platform
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from course_lib.agent import sandbox_seccomp

LIMITS = """\
What the sandbox does NOT protect against:
- kernel bugs: the child shares the host kernel and may make almost every system call (seccomp
  refuses only memfd_create, memfd_secret and shmget); a kernel exploit escapes every fence here;
- side channels (timing, caches, Spectre-style leaks) and CPU/memory-bandwidth contention: the
  child competes for the same cores while it runs (RLIMIT_CPU bounds the total, not the share);
- reading what it is shown: the interpreter, the standard library and the system libraries
  (/usr/lib, ...) are world-readable and bound read-only; a unix socket inside them would be
  reachable if its mode allows; its own /proc shows host-wide facts (kernel, CPUs, memory);
- without a mount namespace (macOS; unshare refused) there is no private root: every
  world-readable file (as your own user: every file you can read) is readable, filesystem unix
  sockets are reachable, world-writable directories such as /tmp and /dev/shm are writable (each
  file <= the file-size limit) and memfd is not refused; as root with Python where nobody may not
  enter, run_python refuses to run instead;
- memory: RLIMIT_AS bounds each process, not their sum (up to max_processes x memory_mb), the
  private tmpfs holds tmp_mb more, and pipes and socket buffers hold kernel memory; no memory
  cgroup counts it all (cgroup v2 with a writable memory controller is not used);
- RLIMIT_NPROC counts every process of the user (shared between concurrent sandboxes run as nobody);
- as your own (non-root) user: the child is uid 0 of its own user namespace, without capabilities,
  i.e. you; without a mount namespace it may write your files and read /proc/<pid>/environ of your
  processes;
- without a network namespace (unshare refused) the child can open sockets like any process;
  without a PID namespace a process that calls setsid() can outlive the run;
- resource exhaustion of the machine inside the limits (CPU time, the tmpfs in RAM, open files).
"""

NOBODY = "nobody"

@dataclass(frozen=True)
class Isolation:
    """What this machine allows, detected once (``isolation()``)."""

    prefix: tuple[str, ...]  # the unshare command put in front of Python (empty: none)
    network: bool            # a network namespace: no network at all
    pid_namespace: bool      # a PID namespace: killing its first process kills every process in it
    private_root: bool       # a mount namespace: the child is chrooted into a minimal root (sandbox_mounts)
    uid: int | None          # the uid the child drops to (as root), else None
    gid: int | None          # and its group
    nproc_enforced: bool     # RLIMIT_NPROC applies (never to uid 0)
    seccomp: bool            # memfd_create and System V shared memory are refused (sandbox_seccomp)
    refusal: str | None      # why run_python refuses to run here (None: it runs)
    notes: tuple[str, ...]   # why a fence is missing or weaker, in words


def _searchable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents] if p.is_dir())


@cache
def isolation() -> Isolation:
    """Probe ``unshare`` (net + IPC + mount + pid namespaces, then net + pid, then net), the uid drop and seccomp;
    cached."""
    notes: list[str] = []
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    prefix, net, pid, private = (), False, False, False
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        notes.append(f"no namespaces (network, PID, mount): need Linux and unshare (platform {sys.platform})")
    else:
        user = () if root else ("--user", "--map-root-user")  # unprivileged: a user namespace first
        pid_ns = ("--pid", "--fork", "--kill-child")
        mounts = ("--ipc", "--mount", *pid_ns, "--mount-proc")
        for extra, test in ((mounts, ("mount", "--bind", "/dev/null", "/dev/null")), (pid_ns, ("true",)),
                            ((), ("true",))):
            cmd = ("unshare", *user, "--net", *extra)
            probe = subprocess.run([*cmd, *test], capture_output=True, text=True, timeout=10)
            if probe.returncode == 0:
                prefix, net, pid, private = cmd, True, "--pid" in extra, "--mount" in extra
                break
            notes.append(f"{' '.join(cmd)} refused: {probe.stderr.strip() or probe.returncode}")
        if not net:
            notes.append("no network namespace: the child can use the network like any process")
        if not pid:
            notes.append("no PID namespace: a child that calls setsid() can outlive the run")
    if not private:
        notes.append("no mount namespace, so no private root: the child sees the host's files (see LIMITS)")
    uid = gid = refusal = None
    if root:
        try:
            entry = pwd.getpwnam(NOBODY)
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            uid, gid = 65534, 65534
        python = Path(sys.executable).resolve()
        if not private and not all(_searchable_by_others(Path(p)) for p in (python.parent, sys.base_prefix)):
            refusal = (f"Python lives where {NOBODY} may not enter ({python}) and there is no mount namespace to "
                       "show it alone: run as a normal user, or install Python where every user may enter")
            notes.append(refusal)
    seccomp = sandbox_seccomp.supported()
    if not seccomp:
        notes.append(f"no seccomp filter for {platform.system()} {platform.machine()}: memfd is not refused")
    nproc = uid is not None or not root
    return Isolation(prefix, net, pid, private, uid, gid, nproc, seccomp, refusal, tuple(notes))


def describe() -> str:
    """What the sandbox does on this machine, what is missing and why, and ``LIMITS``: for a notebook to print."""
    iso = isolation()
    fences = [("network namespace (no network)", iso.network), ("PID namespace", iso.pid_namespace),
              ("private root: only the interpreter, its libraries and a private tmpfs", iso.private_root),
              (f"runs as uid {iso.uid}" if iso.uid is not None else "runs as your own user", True),
              ("no capabilities, no_new_privs", sys.platform.startswith("linux")), ("memfd and System V shared memory refused", iso.seccomp),
              ("RLIMIT_NPROC applies", iso.nproc_enforced)]
    lines = [f"[{'x' if on else ' '}] {name}" for name, on in fences] + [f"note: {note}" for note in iso.notes]
    return "\n".join(lines) + "\n\n" + LIMITS
