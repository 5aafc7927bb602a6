"""A seccomp filter that refuses the sandbox child the memory ``RLIMIT_AS`` cannot see.

``RLIMIT_AS`` bounds the address space of a process, but a ``memfd`` (``memfd_create(2)``) holds memory
through a file descriptor, mapped or not, and a System V shared-memory segment (``shmget(2)``) holds it
with no process at all. No memory cgroup counts every page (see ``sandbox.LIMITS``), so the child gets
``EPERM`` for ``memfd_create``, ``memfd_secret`` and ``shmget``. POSIX shared memory (``/dev/shm``) is a directory on the sandbox's one private tmpfs, so its
size limit bounds it (``sandbox_mounts``). System calls of a foreign ABI (i386 ``int 0x80`` and x32 on
x86-64) are refused wholesale: their numbers differ and would slip past the list.

The filter is classic BPF over ``struct seccomp_data`` (``linux/seccomp.h``; ``nr`` at offset 0, ``arch``
at 4), installed with ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)`` after ``PR_SET_NO_NEW_PRIVS``.
Standard library only (the supervisor imports it under ``python -I``).
"""

import ctypes
import errno
import platform

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x06
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
X32_SYSCALL_BIT = 0x40000000
# machine -> (AUDIT_ARCH_*, the refused system calls' numbers: asm/unistd_64.h, asm-generic/unistd.h)
SYSCALLS = {"x86_64": (0xC000003E, {"memfd_create": 319, "memfd_secret": 447, "shmget": 29}),
            "aarch64": (0xC00000B7, {"memfd_create": 279, "memfd_secret": 447, "shmget": 194})}


class SockFilter(ctypes.Structure):
    """``struct sock_filter`` (linux/filter.h): one BPF instruction."""
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    """``struct sock_fprog``: the program's length and instructions."""
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def supported() -> bool:
    """Whether this machine's ABI has a filter here (Linux on x86-64 or arm64)."""
    return platform.system() == "Linux" and platform.machine() in SYSCALLS


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The BPF instructions (code, jt, jf, k) for ``machine``: foreign ABI or a refused call -> EPERM, else allow."""
    arch, numbers = SYSCALLS[machine]
    deny = (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM)
    prog = [(BPF_LD_W_ABS, 0, 0, 4), (BPF_JEQ_K, 1, 0, arch), deny, (BPF_LD_W_ABS, 0, 0, 0)]
    if machine == "x86_64":
        prog += [(BPF_JGE_K, 0, 1, X32_SYSCALL_BIT), deny]
    for nr in numbers.values():
        prog += [(BPF_JEQ_K, 0, 1, nr), deny]
    return prog + [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW)]


def install(libc) -> None:
    """Install the filter on the calling thread (inherited by its children; cannot be removed)."""
    prog = program(platform.machine())
    insns = (SockFilter * len(prog))(*[SockFilter(*insn) for insn in prog])
    fprog = SockFprog(len(prog), insns)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
