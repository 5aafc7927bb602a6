"""Per-request decoding settings, named and bounded as in OpenAI's API (``/v1/completions`` reference)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplingParams:
    """Per-request decoding settings (OpenAI's names): ``max_tokens`` None = up to the slot's room."""
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        def integer(x):
            return isinstance(x, int) and not isinstance(x, bool)
        def number(x):
            return isinstance(x, float) or integer(x)
        checks = [("max_tokens", self.max_tokens is None or (integer(self.max_tokens) and self.max_tokens >= 1),
                   "a positive int or None"),
                  ("temperature", number(self.temperature) and 0 <= self.temperature <= 2, "a number in [0, 2]"),
                  ("top_p", number(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
                  ("seed", self.seed is None or (integer(self.seed) and -2**63 <= self.seed < 2**64),
                   "an int or None (in [-2**63, 2**64), torch.Generator's range)"),
                  ("stop", isinstance(self.stop, tuple) and len(self.stop) <= 4
                   and all(isinstance(s, str) and s for s in self.stop), "a tuple of at most 4 non-empty strings")]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {getattr(self, name)!r}")
