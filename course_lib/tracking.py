"""Experiment tracking as TensorBoard event files: write scalars, read them back, show them.

TensorBoard's format is a log directory of ``events.out.tfevents.*`` files, each a sequence of
length-prefixed, CRC-checked protobuf ``Event`` records (step, wall time, tag, value). Any tool
reads them: TensorBoard itself (:func:`tensorboard`, started on loopback and stopped with no
orphan process), or :func:`read_scalars` (TensorBoard's ``EventAccumulator``) → :func:`course_lib.viz.curves.plot_scalars`
(plotly), which needs no server. Scalars are stored as float32.

    with Tracker(log_dir, hparams={"lr": 3e-4}) as tracker:
        for step in ...:
            tracker.log(step, loss=loss, lr=lr)
    plot_scalars(read_scalars(log_dir))   # course_lib.viz.curves
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from course_lib.distributed import free_port


class Tracker:
    """Scalar logging to a TensorBoard log directory (``torch.utils.tensorboard.SummaryWriter``)."""

    def __init__(self, log_dir: str | os.PathLike, hparams: dict | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(str(self.log_dir))
        if hparams:
            text = "\n".join(f"| {k} | {v} |" for k, v in hparams.items())
            self.writer.add_text("hparams", "| name | value |\n|---|---|\n" + text, 0)

    def log(self, step: int, scalars: dict[str, float] | None = None, **more: float) -> None:
        """One value per tag at ``step``: ``log(10, loss=2.3)`` or ``log(10, {"train/loss": 2.3})``."""
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        for tag, value in {**(scalars or {}), **more}.items():
            self.writer.add_scalar(tag, float(value), step)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_scalars(log_dir: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), …]}`` from every event file under ``log_dir`` (TensorBoard's reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = Path(log_dir)
    if not log_dir.is_dir():
        raise FileNotFoundError(f"no log directory at {log_dir}")
    out: dict[str, list[tuple[int, float]]] = {}
    for run in sorted({p.parent for p in log_dir.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(run), size_guidance={"scalars": 0})  # 0 = keep every point
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    if not out:
        raise ValueError(f"{log_dir} holds no scalar events")
    return {tag: sorted(points) for tag, points in out.items()}


@contextmanager
def tensorboard(log_dir: str | os.PathLike, port: int | None = None, timeout: float = 60.0):
    """Run TensorBoard on ``http://127.0.0.1:PORT`` for ``log_dir``; yield the URL; stop it on exit.

    The server runs in its own session (process group), so leaving the block terminates it and
    anything it started, waits for it, and kills it if it does not stop within 10 s: no orphans.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir), "--host", "127.0.0.1",
           "--port", str(port), "--reload_interval", "1"]
    errors = tempfile.TemporaryFile()  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                errors.seek(0)
                raise RuntimeError(f"TensorBoard exited with code {proc.returncode}: "
                                   f"{errors.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/data/logdir", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"TensorBoard did not answer on {url} within {timeout} s") from None
                time.sleep(0.3)
        yield url
    finally:
        _stop(proc)
        errors.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, wait, then SIGKILL it if needed; always reap the child."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    proc.wait()
