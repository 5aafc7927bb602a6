"""A save killed at a random instant (SIGKILL, many times) always leaves a loadable, consistent store.

The child process loads the store, then keeps growing it and saving it in a loop; the parent kills
it after a random delay, loads the file and checks that it is one complete state: ``n`` points
whose vectors and payloads are exactly what the child wrote for ``n``, and never fewer points than
the last state seen (a save never rolls the file back). Every third round the child announces its
first ``fsync`` (the temp file fully written, not yet renamed) and the parent kills it right there,
so the most dangerous instant is hit on every run whatever the machine's speed. A save killed that
way leaves its temp file behind; loading the store removes it, and only it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from course_lib.vectordb.store import VectorStore

ROOT = Path(__file__).resolve().parent.parent
DIM = 64
CHILD = textwrap.dedent(f"""
    import sys, numpy as np
    from pathlib import Path
    from course_lib.vectordb.store import VectorStore
    path = Path(sys.argv[1])
    if sys.argv[2] == "pause-in-write":
        import os, time
        def fsync(fd):
            print("writing", flush=True)
            time.sleep(60)
        os.fsync = fsync
    store = VectorStore.load(path) if path.exists() else VectorStore()
    col = store["c"] if "c" in store.collections else store.create_collection("c", {DIM}, "ip")
    print("ready", flush=True)
    while True:
        n = len(col)
        ids = list(range(n, n + 500))
        col.upsert(ids, np.arange(n, n + 500, dtype=np.float32)[:, None] * np.ones({DIM}, np.float32),
                   [{{"i": i, "n_after": n + 500}} for i in ids])
        store.save(path)
""")


def check_state(path: Path) -> int:
    col = VectorStore.load(path)["c"]
    n = len(col)
    assert col.ids == list(range(n))
    np.testing.assert_array_equal(col.vectors, np.arange(n, dtype=np.float32)[:, None] * np.ones(DIM, np.float32))
    assert all(p == {"i": i, "n_after": 500 * (i // 500 + 1)} for i, p in enumerate(col.payloads))
    return n


def test_kill_during_save_leaves_previous_state_loadable(tmp_path):
    path = tmp_path / "store.vdb"
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    last, kills, mid_write = 0, 0, 0
    for round_ in range(25):
        pause = round_ % 3 == 2
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "pause-in-write" if pause else "free"],
                                 env=env, stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready"
        if pause:
            assert child.stdout.readline().strip() == b"writing"
        else:
            time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
        leftovers = list(tmp_path.glob(".store.vdb.tmp-*"))   # a temp file left = killed while writing
        mid_write += bool(leftovers)
        for tmp in leftovers:
            tmp.unlink()
        if path.exists():
            n = check_state(path)
            assert n >= last, f"the file went back from {last} to {n} points"
            last = n
        if last > 40_000:          # keep each save short enough that kills keep landing mid-write
            path.unlink()
            last = 0
    assert kills == 25 and mid_write >= 8, f"only {mid_write} of {kills} kills landed during a write"


def test_loading_removes_temp_files_of_killed_saves_only(tmp_path):
    """SIGKILL mid-save leaves ``.store.vdb.tmp-<pid>``; loading removes it, never a live save's or another file."""
    import fcntl

    path = tmp_path / "store.vdb"
    store = VectorStore()
    store.create_collection("c", DIM, "ip")
    store.save(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    def paused_save():
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "pause-in-write"], env=env,
                                 stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready" and child.stdout.readline().strip() == b"writing"
        return child, tmp_path / f".store.vdb.tmp-{child.pid}"

    live, live_tmp = paused_save()
    try:
        killed, killed_tmp = paused_save()
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert live_tmp.exists() and killed_tmp.exists()        # SIGKILL ran no cleanup
        dead = killed.pid
        others = [tmp_path / name for name in (f".store.vdb.tmp-{dead}x", ".store.vdb.tmp-abc", f".other.vdb.tmp-{dead}",
                                               f"store.vdb.tmp-{dead}", f"notes-{dead}.txt")]
        for other in others:
            other.write_text("not ours")
        assert check_state(path) == 0
        assert not killed_tmp.exists(), "the killed save's temp file must go"
        assert live_tmp.exists(), "a save still running in a live process must keep its temp file"
        assert all(other.read_text() == "not ours" for other in others)
        # a dead pid whose temp file is still locked (a writer in another PID namespace) is kept too
        with open(killed_tmp, "wb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            VectorStore.load(path)
            assert killed_tmp.exists()
        VectorStore.load(path)
        assert not killed_tmp.exists()
    finally:
        live.send_signal(signal.SIGKILL)
        live.wait()
    VectorStore.load(path)
    assert not live_tmp.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["store.vdb"] + [o.name for o in others])
