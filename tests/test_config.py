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
    assert cfg.pick(small=1, full=2) == (2 if cfg.is_full else 1)
    assert "seed=123" in cfg.describe()


def test_bad_seed_and_missing_cuda():
    with pytest.raises(ValueError, match="seed"):
        config.seed_everything(-1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            config.pick_device("cuda")
