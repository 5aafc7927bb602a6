"""Run configuration shared by every notebook: device, run size and seeds.

Every chapter's first code cell is::

    import course_lib.config
    cfg = course_lib.config.setup()

On a CPU the course runs its ``small`` configuration (fits CI: 2 cores, minutes per chapter);
on CUDA it switches to ``full``. The environment variable ``COURSE_SIZE`` (``small`` or ``full``)
overrides the choice, e.g. ``COURSE_SIZE=full`` to try the full demos on a strong CPU.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

SIZES = ("small", "full")
T = TypeVar("T")


@dataclass(frozen=True)
class RunConfig:
    """Device, run size (small/full) and seed of one notebook run, from :func:`setup`."""
    device: torch.device  # where models and tensors of the demos live
    size: str             # "small" (CPU, CI) or "full" (GPU)
    seed: int             # the seed every RNG was set to

    @property
    def is_full(self) -> bool:
        """True for the full (GPU) run size."""
        return self.size == "full"

    def pick(self, small: T, full: T) -> T:
        """Return ``small`` or ``full`` by run size, e.g. ``steps = cfg.pick(small=200, full=5000)``."""
        return full if self.is_full else small

    def describe(self) -> str:
        """One line naming device, run size, seed and torch version."""
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return f"device={self.device} ({name}), size={self.size}, seed={self.seed}, torch={torch.__version__}"


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or ``prefer`` if given), else the CPU."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {prefer!r} was asked for but CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run_size(device: torch.device) -> str:
    """``COURSE_SIZE`` if set, else ``full`` on CUDA and ``small`` elsewhere."""
    size = os.environ.get("COURSE_SIZE", "").strip().lower()
    if size:
        if size not in SIZES:
            raise ValueError(
                f"COURSE_SIZE={os.environ['COURSE_SIZE']!r} is not a run size; "
                f"set it to one of {SIZES} or unset it to choose from the device"
            )
        return size
    return "full" if device.type == "cuda" else "small"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so re-runs give the same numbers."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _plotly_as_json() -> None:
    """Save plotly figures in notebooks as ``plotly_mimetype`` JSON, not as embedded plotly.js (§9)."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype"


def setup(seed: int = 0, device: str | None = None, threads: int | None = None) -> RunConfig:
    """Pick device and run size, seed every RNG, and return the :class:`RunConfig`.

    ``threads`` caps torch's intra-op threads (default: leave torch's choice).
    """
    dev = pick_device(device)
    size = run_size(dev)
    seed_everything(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    _plotly_as_json()
    return RunConfig(device=dev, size=size, seed=seed)
