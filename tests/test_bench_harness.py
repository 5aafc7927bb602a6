"""bench.harness: interleaved timing recovers a known cost ratio; thread settings are pinned.

The fake pair sleeps 60 ms and 30 ms: the measured ratio must be 2 within ±15 % (sleep overshoots
by well under a millisecond on an idle machine, a few ms on a loaded one; 7 interleaved rounds and
medians absorb the load spikes of a shared one). A harness that swapped names, timed the warm-up, or summed instead of
taking medians per function would miss that window.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

from bench import harness


def test_interleaved_recovers_a_known_ratio_and_alternates():
    calls = []

    def slow():
        calls.append("slow")
        time.sleep(0.060)

    def fast():
        calls.append("fast")
        time.sleep(0.030)

    t = harness.interleaved({"slow": slow, "fast": fast}, rounds=7, warmup=2)
    assert 1.7 <= t["slow"] / t["fast"] <= 2.3, t
    assert 0.059 <= t["slow"] <= 0.09, t
    assert calls[:4] == ["slow", "fast", "slow", "fast"]  # warm-up
    rounds = calls[4:]
    assert len(rounds) == 14 and rounds[:4] == ["slow", "fast", "fast", "slow"]  # the order flips every round


def test_interleaved_uses_medians():
    costs = iter([0.0, 0.030, 0.0, 0.0, 0.0])  # one slow outlier among five rounds

    def spiky():
        time.sleep(next(costs))

    assert harness.interleaved({"spiky": spiky}, rounds=5, warmup=0)["spiky"] < 0.01


def test_interleaved_bad_input():
    with pytest.raises(TypeError, match="non-empty dict"):
        harness.interleaved({})
    with pytest.raises(ValueError, match="rounds must be an int >= 1"):
        harness.interleaved({"f": lambda: None}, rounds=0)


def test_pin_threads_sets_and_reports_the_settings():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        settings = harness.pin_threads(1)
        assert torch.get_num_threads() == 1 and os.environ["TOKENIZERS_PARALLELISM"] == "false"
        assert settings == {"torch_threads": 1, "TOKENIZERS_PARALLELISM": "false", "RAYON_NUM_THREADS": "1"}
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be a positive int"):
        harness.pin_threads(0)
