"""The sandbox's supervisor, run as a script (``python -I sandbox_boot.py CONFIG_JSON``), never imported.

``sandbox.run_python`` starts it (inside ``unshare`` where allowed, so it is PID 1 of a fresh PID
namespace). It reads ``main.py``, mounts private tmpfs over ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock``
when asked (inside a mount namespace: the host never sees them), then forks the child, which:

1. drops to an unprivileged uid when started as root (``PR_SET_KEEPCAPS`` + ``setuid``, keeping only
   the capabilities in ``keep_caps``), and sets ``PR_SET_NO_NEW_PRIVS``;
2. sets the resource limits (``RLIMIT_NPROC`` counts every process of the user, so it allows
   ``nproc_base`` more: the user's processes counted by the parent);
3. runs ``main.py`` as ``__main__`` in the work directory and exits with its status.

The supervisor waits and writes ``{"exit": n}`` or ``{"signal": n}`` to the status pipe
(``status_fd``): ``unshare`` 2.38 does not pass a child's death by signal on reliably.
"""

import ctypes
import json
import os
import resource
import sys
import traceback

PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS = 8, 38
MS_NOSUID, MS_NODEV = 2, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
PRIVATE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # the usual world-writable directories


class CapHeader(ctypes.Structure):
    """``struct __user_cap_header_struct`` of ``capset(2)`` (linux/capability.h): version and pid."""
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    """``struct __user_cap_data_struct`` of ``capset(2)``: effective, permitted, inheritable bit sets."""
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def private_tmp(libc, size_mb: int) -> None:
    """Fresh, size-limited tmpfs over the world-writable directories (needs a mount namespace)."""
    for path in PRIVATE_DIRS:
        if os.path.isdir(path):
            options = f"size={size_mb}m,mode=1777".encode()
            if libc.mount(b"tmpfs", path.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
                raise OSError(ctypes.get_errno(), f"mount tmpfs on {path}")


def drop_privileges(libc, uid: int, gid: int, keep_caps: int) -> None:
    """Become ``uid``/``gid`` with no supplementary groups, keeping only the capabilities in ``keep_caps``."""
    libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)  # keep the permitted set over setuid ...
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    data = (CapData * 2)()
    data[0].effective = data[0].permitted = keep_caps  # ... then keep only keep_caps of it
    if libc.capset(ctypes.byref(CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data) != 0:
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
    if cfg["uid"] is not None:
        drop_privileges(libc, cfg["uid"], cfg["gid"], cfg["keep_caps"])
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries and file capabilities grant nothing
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
    """The supervisor: private tmpfs if asked, fork the child that drops privileges and runs ``main.py``, report its status."""
    cfg = json.loads(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    with open(os.path.join(cfg["cwd"], "main.py"), encoding="utf-8") as f:
        source = f.read()
    if cfg["tmp_mb"]:
        private_tmp(libc, cfg["tmp_mb"])
        os.makedirs(cfg["cwd"], exist_ok=True)  # the same path, now on the private tmpfs when under /tmp
        if cfg["uid"] is not None:
            os.chown(cfg["cwd"], cfg["uid"], cfg["gid"])
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
