"""course_lib.config: device, run size and seeding."""

import pytest
import torch

from course_lib import config


def test_small_on_cpu_and_override(monkeypatch):
    monkeypatch.delenv("COURSE_SIZE", raising=False)
    assert config.run_size(torch.device("cpu")) == "small"
    assert config.run_size(torch.device("cuda")) == "full"
    monkeypatch.setenv("COURSE_SIZE", "FULL")
    assert config.run_size(torch.device("cpu")) == "full"


def test_unknown_size_says_what_to_set(monkeypatch):
    monkeypatch.setenv("COURSE_SIZE", "medium")
    with pytest.raises(ValueError, match="COURSE_SIZE='medium'.*one of"):
        config.setup()


def test_setup_seeds_everything(monkeypatch):
    monkeypatch.delenv("COURSE_SIZE", raising=False)
    cfg = config.setup(seed=123)
    a = torch.randn(3)
    config.setup(seed=123)
    torch.testing.assert_close(torch.randn(3), a, rtol=0, atol=0)
    assert "seed=123" in cfg.describe()


@pytest.mark.parametrize("size, expected", [("small", 200), ("full", 5000)])
def test_pick_follows_the_run_size(monkeypatch, size, expected):
    monkeypatch.setenv("COURSE_SIZE", size)
    cfg = config.setup(device="cpu")
    assert (cfg.size, cfg.pick(small=200, full=5000)) == (size, expected)


def test_bad_seed_and_missing_cuda(monkeypatch):
    with pytest.raises(ValueError, match="seed"):
        config.seed_everything(-1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same check on a GPU machine
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.pick_device("cuda")
    assert config.pick_device() == torch.device("cpu")
