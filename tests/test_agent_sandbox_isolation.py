"""The Python sandbox (``course_lib.agent.sandbox``) against hostile code, part 2: isolation. Writes,
reads, sockets, shared memory, capabilities and secrets never reach the host; without a mount namespace
root refuses to run; a normal user gets the same fences from a user namespace. Part 1 (resource limits,
chapter 10's table) is tests/test_agent_sandbox.py.
"""

from __future__ import annotations

import ast
import dataclasses
import errno
import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from course_lib.agent import sandbox, sandbox_isolation, sandbox_mounts
from course_lib.agent.sandbox import isolation, run_python
from tests.sandbox_attacks import (
    QUICK,
    REPO,
    attack,
    stop_time_table,  # noqa: F401  (autouse: prints the stop-time table)
)

if not hasattr(os, "fork"):
    pytest.skip("the sandbox needs POSIX", allow_module_level=True)


def test_writes_outside_the_work_dir_are_refused(tmp_path):
    iso = isolation()
    if iso.uid is None and not iso.private_root:
        pytest.skip("the child runs as your own user, so it may write your files (see LIMITS)")
    stdlib_file = Path(sysconfig.get_paths()["stdlib"]).resolve() / "sandbox_escape.txt"
    targets = [tmp_path / "escape.txt", REPO / "sandbox_escape.txt", stdlib_file]
    code = (f"for path in {[str(t) for t in targets]!r}:\n    try:\n        open(path, 'w').write('x')\n"
            "        print('WROTE', path)\n    except OSError as e:\n        print('refused', type(e).__name__)\n")
    r = attack("write outside its dir", code)
    # in the private root the host's /tmp and the repo are not there, and the standard library is a
    # read-only bind (EROFS: a plain OSError); without it nobody may not write root's files
    expected = (["refused FileNotFoundError"] * 2 + ["refused OSError"] if iso.private_root
                else ["refused PermissionError"] * 3)
    assert r.stdout.splitlines() == expected, r
    assert not any(t.exists() for t in targets)


def test_writes_to_world_writable_dirs_never_reach_the_host():
    iso = isolation()
    if not iso.private_root:
        pytest.skip("no mount namespace here: files the child leaves in /tmp stay (see LIMITS); " + "; ".join(iso.notes))
    targets = [f"{d}/course_sandbox_escape_{os.getpid()}.txt" for d in ("/tmp", "/var/tmp", "/dev/shm")]
    code = f"for path in {targets!r}:\n    open(path, 'w').write('x')\nprint('wrote', len({targets!r}))\n"
    r = attack("write to /tmp, /dev/shm", code)
    assert r.stdout == "wrote 3\n", r  # the child sees writable directories ...
    assert not any(Path(t).exists() for t in targets)  # ... private ones: nothing reaches the host


def test_the_child_sees_only_what_it_needs():
    iso = isolation()
    if not iso.private_root:
        pytest.skip("no mount namespace here: the child sees the host's files (see LIMITS); " + "; ".join(iso.notes))
    site_dirs = [p for p in site.getsitepackages() if Path(p).is_dir()]
    code = ("import os, subprocess, sys\nprint(sorted(os.listdir('/')))\n"
            f"print(sum(len(os.listdir(p)) for p in {site_dirs!r}))\n"
            "print(subprocess.run([sys.executable, '-c', 'import json; print(6 * 7)'], capture_output=True).stdout)\n")
    r = attack("list the root directory", code)
    top, site_files, rerun = r.stdout.splitlines()
    layout = sandbox_mounts.plan()
    needed = {Path(p).parts[1] for p, _ in layout["links"]} | {Path(t).parts[1] for _, t in layout["binds"]}
    assert set(ast.literal_eval(top)) == needed | {"dev", "proc", "tmp", "var"}, r  # not /etc/shadow's /etc, not /home, ...
    assert len(site_dirs) >= 1 and site_files == "0"  # site-packages covered: the tool needs only the stdlib
    assert rerun == "b'42\\n'"  # the interpreter itself is there, and can start again


def test_secret_files_and_the_interpreters_home_are_unreadable():
    iso = isolation()
    if iso.uid is None and not iso.private_root:
        pytest.skip("the child runs as your own user without a private root: it reads what you read (see LIMITS)")
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    home = Path("/", Path(sys.base_prefix).resolve().parts[1])  # /root for pyenv, /usr for a system Python
    planted = [REPO / f".sandbox_secret_{os.getpid()}", stdlib / f"sandbox_secret_{os.getpid()}.txt"]
    if os.access(home, os.W_OK):
        planted.append(home / f".sandbox_secret_{os.getpid()}")
    for path in planted:
        path.write_text("sk-planted")
        path.chmod(0o600)  # another user's secret (root's; in a user namespace, yours)
    readable = [Path("/etc/shadow"), *(planted if iso.uid is not None else planted[:1])]  # in a user namespace
    code = (f"import os\nfor path in {[str(p) for p in readable]!r}:\n    try:\n        print(open(path).read()[:8])\n"
            "    except OSError as e:\n        print('refused', type(e).__name__)\n"
            f"try:\n    print(sorted(os.listdir({str(home)!r})))\nexcept OSError as e:\n    print('refused', type(e).__name__)\n")
    try:
        r = attack("read /etc/shadow, 0600 files", code)
    finally:
        for path in planted:
            path.unlink()
    binds = [Path(target) for _, target in sandbox_mounts.plan()["binds"]] if iso.private_root else []

    def refusal(path: Path) -> str:  # not in the private root, or there (bound read-only) but not nobody's
        hidden = iso.private_root and not any(path.is_relative_to(b) for b in binds)
        return "refused FileNotFoundError" if hidden else "refused PermissionError"

    *reads, listing = r.stdout.splitlines()
    assert reads == [refusal(p) for p in readable], r
    if iso.private_root:  # the interpreter's home shows at most the way to the binds (here: not even that)
        bound = {b.relative_to(home).parts[0] for b in binds if b.is_relative_to(home) and b != home}
        assert listing == "refused PermissionError" or set(ast.literal_eval(listing)) <= bound, r


def test_filesystem_and_abstract_unix_sockets_are_unreachable():
    iso = isolation()
    if not iso.private_root:
        pytest.skip("no mount namespace here: filesystem unix sockets are reachable (see LIMITS)")
    folder = Path(tempfile.mkdtemp(prefix=".sock", dir=REPO))  # outside /tmp, like /run/docker.sock or X11's
    folder.chmod(0o755)
    servers = [socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)]
    addresses = [str(folder / "s"), f"\0course_sandbox_{os.getpid()}"]
    try:
        for server, address in zip(servers, addresses):
            server.bind(address)
            server.listen(1)
        os.chmod(addresses[0], 0o777)  # anyone may connect
        code = (f"import socket\nfor address in {addresses!r}:\n    try:\n        socket.socket(socket.AF_UNIX)"
                ".connect(address)\n        print('CONNECTED')\n    except OSError as e:\n"
                "        print('refused', type(e).__name__)\n")
        r = attack("connect to a unix socket", code)
    finally:
        for server in servers:
            server.close()
        shutil.rmtree(folder)
    # the file is not in the private root; abstract names belong to the network namespace
    assert r.stdout.splitlines() == ["refused FileNotFoundError", "refused ConnectionRefusedError"], r


def test_memfd_and_system_v_shared_memory_are_refused():
    iso = isolation()
    if not iso.seccomp:
        pytest.skip("no seccomp filter here: a memfd holds memory past RLIMIT_AS (see LIMITS); " + "; ".join(iso.notes))
    code = ("import ctypes, os\nheld, fds = 0, []\ntry:\n    while held < 1 << 30:\n"
            "        fds.append(os.memfd_create('bomb'))\n        for _ in range(8):\n"
            "            held += os.write(fds[-1], bytes(1 << 20))\nexcept OSError as e:\n    print(type(e).__name__)\n"
            "print(held >> 20)\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print(libc.shmget(0, 256 << 20, 0o1600), ctypes.get_errno())\n")  # IPC_PRIVATE, IPC_CREAT | 0600
    limits = dataclasses.replace(QUICK, memory_mb=128, wall_s=5.0)
    r = attack("memfd bomb, System V shm", code, limits)
    error, held_mb, shm = r.stdout.splitlines()
    assert int(held_mb) <= limits.memory_mb, r  # 8 MB memfds (the file-size limit) held past the 128 MB limit
    assert (error, held_mb, shm) == ("PermissionError", "0", f"-1 {errno.EPERM}"), r


def test_everything_the_child_writes_shares_one_small_tmpfs():
    iso = isolation()
    if not iso.private_root:
        pytest.skip("no mount namespace here: /tmp and /dev/shm are the host's (see LIMITS)")
    code = ("import os\ntotal = 0\nfor folder in ['.', '/tmp', '/var/tmp', '/dev/shm', '/run/lock']:\n"
            "    for i in range(64):\n        try:\n            fd = os.open(f'{folder}/fill{i}', os.O_WRONLY | os.O_CREAT)\n"
            "            for _ in range(8):\n                total += os.write(fd, bytes(1 << 20))\n"
            "        except OSError:\n            break\nprint(total >> 20)\n")
    limits = dataclasses.replace(QUICK, tmp_mb=32, wall_s=5.0)
    r = attack("fill /tmp, /dev/shm", code, limits)
    assert r.ok and 16 <= int(r.stdout) <= limits.tmp_mb, r  # not 32 MB per directory


def test_the_child_keeps_no_capabilities():
    if not sys.platform.startswith("linux"):
        pytest.skip("capabilities are Linux's")
    code = ("import ctypes, os\nstatus = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
            "print(*[status[k].strip() for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs')])\n"
            "libc = ctypes.CDLL(None, use_errno=True)\nprint(libc.unshare(0x10000000), ctypes.get_errno())\n")
    r = attack("capabilities, user namespace", code)
    caps, userns = r.stdout.splitlines()
    assert caps == " ".join(["0" * 16] * 5 + ["1"]), r  # no capability in any set, bounding set included
    if isolation().private_root:  # chrooted: no user namespace of its own to win capabilities back in
        assert userns == f"-1 {errno.EPERM}", r


def test_parent_environment_secrets_are_not_visible(monkeypatch):
    monkeypatch.setenv("COURSE_SECRET", "hunter2")
    code = ("import os\nprint(sorted(os.environ))\nprint(os.environ.get('COURSE_SECRET'))\n"
            f"try:\n    print(b'hunter2' in open('/proc/{os.getpid()}/environ', 'rb').read())\n"
            "except OSError as e:\n    print(type(e).__name__)\n")
    r = attack("read parent's secrets", code)
    names, secret, proc_read = r.stdout.splitlines()
    assert names == "['HOME', 'LANG', 'PATH', 'TMPDIR']" and secret == "None"
    iso = isolation()
    if iso.private_root:
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


def test_without_a_mount_namespace_root_refuses_rather_than_grant_reads(monkeypatch):
    """The old way out (the child kept CAP_DAC_READ_SEARCH to reach a Python under a 0700 /root) read every file."""
    python = Path(sys.executable).resolve()
    if os.geteuid() != 0 or all(p.stat().st_mode & 0o001 for p in python.parents):
        pytest.skip("needs root and a Python where nobody may not enter (pyenv under /root)")
    real_run = subprocess.run

    def no_mounts(cmd, **kwargs):  # a machine where unshare --mount is refused
        if "--mount" in cmd:
            return subprocess.CompletedProcess(cmd, 1, "", "unshare: mount namespaces are not allowed")
        return real_run(cmd, **kwargs)

    monkeypatch.setattr(sandbox_isolation.subprocess, "run", no_mounts)
    iso = sandbox_isolation.isolation.__wrapped__()  # not the cached answer
    assert not iso.private_root and iso.uid is not None and "nobody may not enter" in iso.refusal
    monkeypatch.setattr(sandbox_isolation, "isolation", lambda: iso)
    assert "[ ] private root" in sandbox_isolation.describe() and iso.refusal in sandbox_isolation.describe()
    monkeypatch.setattr(sandbox, "isolation", lambda: iso)
    with pytest.raises(RuntimeError, match="the sandbox refuses to run here: Python lives where nobody"):
        run_python("print(open('/etc/shadow').read())")


UNPRIVILEGED = """
import socket
from course_lib.agent.sandbox import Limits, isolation, run_python
iso = isolation()
print(iso.uid, iso.network, iso.pid_namespace, iso.private_root)
print(run_python("import os; print(os.getuid())").stdout.strip())
print(run_python("print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])").stdout.strip())
print(run_python("open('/etc/shadow')").stderr.strip().splitlines()[-1])
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
    probe = subprocess.run([str(python), "-I", "-c", "print(1)"], user=65534, group=65534, extra_groups=[],
                           capture_output=True, text=True, cwd="/", env={"PATH": "/usr/bin:/bin"})
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {python}: {probe.stderr.strip()}")
    done = subprocess.run([str(python), "-c", UNPRIVILEGED], user=65534, group=65534, extra_groups=[], cwd="/",
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                          timeout=60)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0] == "None True True True", (done.stdout, done.stderr)
    assert lines[1] == "0"  # root inside its own user namespace, nobody outside it ...
    assert lines[2] == "0" * 16  # ... with no capability at all
    assert lines[3] == "FileNotFoundError: [Errno 2] No such file or directory: '/etc/shadow'"  # the private root
    assert lines[4] == "OSError: [Errno 101] Network is unreachable"
    assert lines[5] == "wall-clock timeout after 1 s"
