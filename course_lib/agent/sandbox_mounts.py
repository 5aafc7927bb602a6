"""The sandbox's private filesystem view: a minimal root of read-only bind mounts on a small tmpfs.

``plan()`` (the parent, once) lists what the child needs and nothing else:

- the interpreter file, the standard library (``sysconfig`` ``stdlib``/``platstdlib``) and, for a shared
  build, the directory of ``libpython`` (``LIBDIR``) -- the real prefix, so a venv's packages stay out;
- the system library directories the interpreter and its extension modules link against (``/usr/lib``,
  ``/lib``, ... as directories or as the same symlinks the host has) and ``/etc/ld.so.cache``;
- every ``site-packages``/``dist-packages`` inside those binds is covered by an empty read-only tmpfs
  (the supervisor, ``sandbox_boot.py``, imports only the standard library).

``build_root(libc, plan, ...)`` (the supervisor, inside a fresh mount namespace, as root of it) makes
every mount private, mounts a ``size_mb`` tmpfs at ``ROOT``, binds the plan read-only into it, adds
``/dev`` (null, zero, full, random, urandom: binds of the host's nodes), ``/proc`` (a fresh, read-only
one for the sandbox's PID namespace), ``/tmp``, ``/var/tmp``, ``/dev/shm`` (mode 1777) and the work
directory, then ``chroot``s into it. Everything the child can write lives on that one tmpfs, so
``size_mb`` bounds it all. Directories created only to hold a mount point are mode 0711 (``/root``
can be crossed, not listed). ``chroot`` (not ``pivot_root``) keeps the process "chrooted" in the
kernel's eyes, which forbids it to create user namespaces (``unshare(2)``, EPERM), so the child cannot
win capabilities back in a namespace of its own. Compare bubblewrap's ``--ro-bind`` / ``--dev`` / ``--proc``.

Standard library only: ``sandbox_boot.py`` imports it as a top-level module under ``python -I``.
"""

import ctypes
import os
import site
import sys
import sysconfig

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
# statvfs flags -> mount flags: a bind remount must repeat the flags a user namespace locked on the source
LOCKED_FLAGS = {os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV, os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME,
                os.ST_NODIRATIME: MS_NODIRATIME, os.ST_RELATIME: MS_RELATIME} if hasattr(os, "ST_RELATIME") else {}
SYSTEM_LIBS = ("/lib", "/lib64", "/lib32", "/libx32", "/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")  # world-writable (1777) directories on the private tmpfs
ROOT = "/tmp"  # where the new root's tmpfs is mounted inside the namespace (the host never sees it)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def plan() -> dict:
    """What the child sees: ``binds`` ([source, target] pairs), ``links`` ([path, symlink target]) and ``hide``."""
    binds, links = [], []
    for path in SYSTEM_LIBS:
        if os.path.islink(path):
            links.append([path, os.readlink(path)])
        elif os.path.isdir(path):
            binds.append([path, path])
    paths = sysconfig.get_paths()
    dirs = [paths["stdlib"], paths["platstdlib"]]
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and sysconfig.get_config_var("LIBDIR"):
        dirs.append(sysconfig.get_config_var("LIBDIR"))
    for path in sorted({os.path.realpath(d) for d in dirs if os.path.isdir(d)}, key=len):
        if not any(_under(path, src) for src, _ in binds):
            binds.append([path, path])
    python = os.path.realpath(sys.executable)
    binds += [[python, exe] for exe in sorted({python, os.path.abspath(sys.executable)})]
    if os.path.isfile("/etc/ld.so.cache"):
        binds.append(["/etc/ld.so.cache", "/etc/ld.so.cache"])
    sites = {os.path.realpath(p) for p in [*site.getsitepackages(), site.getusersitepackages()] if os.path.isdir(p)}
    hide = sorted(p for p in sites if any(_under(p, src) and os.path.isdir(src) for src, _ in binds))
    return {"binds": binds, "links": links, "hide": hide}


def _mount(libc, source, target: str, fstype, flags: int, data=None) -> None:
    args = [None if a is None else a.encode() for a in (source, target, fstype, data)]
    if libc.mount(args[0], args[1], args[2], ctypes.c_ulong(flags), args[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _makedirs(path: str, mode: int = 0o711) -> None:
    """Create ``path`` and its missing parents, each with ``mode`` (not the umask's)."""
    if os.path.isdir(path):
        return
    _makedirs(os.path.dirname(path), mode)
    os.mkdir(path)
    os.chmod(path, mode)


def _bind(libc, source: str, target: str, extra: int = MS_NOSUID | MS_NODEV) -> None:
    """Bind ``source`` at ``target`` (created as an empty dir or file), then make it read-only."""
    if os.path.isdir(source):
        _makedirs(target)
    else:
        _makedirs(os.path.dirname(target))
        open(target, "wb").close()
    _mount(libc, source, target, None, MS_BIND)
    held = os.statvfs(source).f_flag
    locked = sum(ms for st, ms in LOCKED_FLAGS.items() if held & st)
    _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | extra | locked)


def build_root(libc, layout: dict, cwd: str, owner: tuple[int, int] | None, size_mb: int) -> None:
    """Build the minimal root described by ``layout`` (``plan()``) with the work dir ``cwd`` and chroot into it."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here propagates to the host
    _mount(libc, "tmpfs", ROOT, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=755")
    for source, target in layout["binds"]:
        _bind(libc, source, ROOT + target)
    for path, target in layout["links"]:
        _makedirs(os.path.dirname(ROOT + path))
        os.symlink(target, ROOT + path)
    for path in layout["hide"]:
        _mount(libc, "tmpfs", ROOT + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
    _makedirs(ROOT + "/dev", 0o755)
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            _bind(libc, f"/dev/{name}", f"{ROOT}/dev/{name}", MS_NOSUID | MS_NOEXEC)  # devices: no MS_NODEV
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", f"{ROOT}/dev/{name}")
    os.symlink("/proc/self/fd", f"{ROOT}/dev/fd")
    _makedirs(ROOT + "/proc", 0o555)
    _mount(libc, "proc", ROOT + "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in WRITABLE:
        _makedirs(ROOT + path, 0o755)
        os.chmod(ROOT + path, 0o1777)
    _makedirs(ROOT + cwd, 0o700)
    if owner is not None:
        os.chown(ROOT + cwd, *owner)
    os.chroot(ROOT)
    os.chdir("/")
