"""The sandbox's supervisor, run as a script (``python -I sandbox_boot.py CONFIG_JSON``), never imported.

``sandbox.run_python`` starts it (inside ``unshare`` where allowed, so it is PID 1 of a fresh PID
namespace). It reads ``main.py``; when given a ``root`` layout it builds the minimal root and chroots
into it (``sandbox_mounts``: the host's files are simply not there); then it forks the child, which:

1. empties its capability bounding set (``PR_CAPBSET_DROP``) and ambient set, drops to an unprivileged
   uid when started as root (``setgroups([])``, ``setgid``, ``setuid``), and clears every capability it
   still has (``capset`` to zero: as root of a user namespace the uid stays 0, but powerless);
2. sets ``PR_SET_NO_NEW_PRIVS`` and, where supported, the seccomp filter (``sandbox_seccomp``: no
   ``memfd_create``, no System V shared memory);
3. sets the resource limits (``RLIMIT_NPROC`` counts every process of the user, so it allows
   ``nproc_base`` more: the user's processes counted by the parent);
4. runs ``main.py`` as ``__main__`` in the work directory and exits with its status.

The supervisor waits and writes ``{"exit": n}`` or ``{"signal": n}`` to the status pipe
(``status_fd``): ``unshare`` 2.38 does not pass a child's death by signal on reliably. If a fence cannot
be set up the child prints why and exits 120 without running the code.
"""

import ctypes
import json
import os
import resource
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's directory out
import sandbox_mounts  # noqa: E402  (stdlib-only siblings, imported before the chroot hides them)
import sandbox_seccomp  # noqa: E402

PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class CapHeader(ctypes.Structure):
    """``struct __user_cap_header_struct`` of ``capset(2)`` (linux/capability.h): version and pid."""
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    """``struct __user_cap_data_struct`` of ``capset(2)``: effective, permitted, inheritable bit sets."""
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(libc, uid, gid) -> None:
    """Keep no capability: empty the bounding and ambient sets, become ``uid``/``gid`` (when given) with no
    supplementary groups, then clear the effective, permitted and inheritable sets (capabilities: Linux only)."""
    linux = sys.platform.startswith("linux")
    cap = 0
    while linux and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:  # EINVAL past the last one (EPERM: none held)
        cap += 1
    if linux:
        libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    if uid is not None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)  # without PR_SET_KEEPCAPS: leaving uid 0 clears the permitted set
    if linux and libc.capset(ctypes.byref(CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), (CapData * 2)()) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def set_limits(rlimits, nproc_base: int) -> None:
    """``rlimits`` as (name, value) pairs; ``RLIMIT_NPROC`` gets ``nproc_base`` more (the user's other processes,
    counted by the parent: this /proc may show only the namespace's)."""
    for name, value in rlimits:
        res = getattr(resource, name)
        hard = resource.getrlimit(res)[1]
        value += nproc_base if name == "RLIMIT_NPROC" else 0

        def fit(v, hard=hard):
            return v if hard == resource.RLIM_INFINITY else min(v, hard)

        resource.setrlimit(res, (fit(value), fit(value + (name == "RLIMIT_CPU"))))  # SIGXCPU, then SIGKILL


def run_child(libc, cfg: dict, source: str) -> int:
    """Become the sandboxed child and run ``source``; returns the exit status."""
    os.close(cfg["status_fd"])
    drop_privileges(libc, cfg["uid"], cfg["gid"])
    if sys.platform.startswith("linux") and libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:  # setuid binaries and file capabilities grant nothing
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if cfg["seccomp"]:
        sandbox_seccomp.install(libc)
    set_limits(cfg["rlimits"], cfg["nproc_base"])
    os.chdir(cfg["cwd"])
    sys.argv = ["main.py"]
    sys.path.insert(0, cfg["cwd"])
    rc = 0
    try:
        exec(compile(source, "main.py", "exec"), {"__name__": "__main__"})
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (e.code is not None and print(e.code, file=sys.stderr) is None)
    except BaseException as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # only the learner's frames
        rc = 1
    try:
        import atexit

        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        rc = rc or 1
    return int(rc) & 255


def main() -> None:
    """The supervisor: the minimal root if asked, fork the child that drops privileges and runs ``main.py``, report
    its status."""
    cfg = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    with open(os.path.join(cfg["cwd"], "main.py"), encoding="utf-8") as f:
        source = f.read()
    if cfg["root"] is not None:  # the work dir keeps its path, now on the private tmpfs
        owner = None if cfg["uid"] is None else (cfg["uid"], cfg["gid"])
        sandbox_mounts.build_root(libc, cfg["root"], cfg["cwd"], owner, cfg["tmp_mb"])
    pid = os.fork()
    if pid == 0:
        try:
            rc = run_child(libc, cfg, source)
        except BaseException:  # a fence could not be set up: do not run the code without it
            traceback.print_exc()
            rc = 120
        os._exit(rc)
    _, status = os.waitpid(pid, 0)
    ended = {"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status) else {"exit": os.WEXITSTATUS(status)}
    os.write(cfg["status_fd"], json.dumps(ended).encode())


if __name__ == "__main__":
    main()
