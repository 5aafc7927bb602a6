"""Tracking: scalars written as TensorBoard events read back equal; TensorBoard serves them and stops."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from course_lib import tracking
from course_lib.viz.curves import plot_scalars


def write_runs(log_dir):
    """Two runs; values are float32 numbers (TensorBoard stores scalars as float32) so equality is exact."""
    rng = np.random.default_rng(0)
    written = {}
    for run in ("a", "b"):
        values = rng.standard_normal(20).astype(np.float32).tolist()
        with tracking.Tracker(log_dir / run, hparams={"lr": 1e-3, "run": run}) as t:
            for step, v in enumerate(values):
                t.log(step * 5, {f"{run}/loss": v}, lr=1e-3)
        written[f"{run}/loss"] = [(step * 5, v) for step, v in enumerate(values)]
    return written


def test_scalars_round_trip(tmp_path):
    written = write_runs(tmp_path)
    read = tracking.read_scalars(tmp_path)
    assert set(read) == {"a/loss", "b/loss", "lr"}
    for tag, points in written.items():
        assert read[tag] == points  # steps and float32 values, exactly
    assert read["lr"] == sorted(2 * [(s * 5, float(np.float32(1e-3))) for s in range(20)])
    fig = plot_scalars(read, tags=["a/loss", "b/loss"])
    assert [tr.name for tr in fig.data] == ["a/loss", "b/loss"] and len(fig.data[0].y) == 20
    with pytest.raises(ValueError, match=r"tags \['nope'\] are not in the scalars"):
        plot_scalars(read, tags=["nope"])


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no log directory"):
        tracking.read_scalars(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no scalar events"):
        tracking.read_scalars(tmp_path)
    with tracking.Tracker(tmp_path / "r") as t, pytest.raises(ValueError, match="step must be an int >= 0"):
        t.log(-1, loss=1.0)


def test_tensorboard_serves_the_scalars_and_stops(tmp_path):
    written = write_runs(tmp_path)
    with tracking.tensorboard(tmp_path, timeout=120) as url:
        assert url.startswith("http://127.0.0.1:")
        query = f"{url}/data/plugin/scalars/scalars?run=a&tag=a/loss"
        body = []
        for _ in range(60):  # the first load of the log directory can lag the server's start
            try:
                body = json.loads(urllib.request.urlopen(query, timeout=10).read())
                break
            except urllib.error.HTTPError:  # run not loaded yet
                time.sleep(0.5)
        served = [(step, value) for _wall, step, value in body]
        assert served == written["a/loss"]
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens on the port any more
        urllib.request.urlopen(url, timeout=5)
