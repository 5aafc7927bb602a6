"""course_lib.checks: the input checks every model shares report bad input one way."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from course_lib.checks import check_hidden, check_positive_ints, check_sequence_input


def test_check_hidden_names_the_expected_and_the_given_shape():
    check_hidden(torch.zeros(2, 3, 8), 8)
    with pytest.raises(ValueError, match=r"^x must have shape \(B, T, 8\), got \(2, 8\)$"):
        check_hidden(torch.zeros(2, 8), 8)
    with pytest.raises(ValueError, match=r"^h must have shape \(B, T, 8\), got \(2, 3, 4\)$"):
        check_hidden(torch.zeros(2, 3, 4), 8, name="h")
    with pytest.raises(ValueError, match=r"got list$"):
        check_hidden([[0.0] * 8], 8)


def test_check_sequence_input_mode_shape_and_state():
    x = torch.zeros(1, 4, 6)
    check_sequence_input(x, 6, "parallel", None)
    check_sequence_input(x, 6, "recurrent", ("any state",))
    with pytest.raises(ValueError, match="mode must be one of \\('parallel', 'recurrent'\\), got 'chunked'"):
        check_sequence_input(x, 6, "chunked", None)
    with pytest.raises(ValueError, match=r"x must have shape \(B, T, 5\)"):
        check_sequence_input(x, 5, "parallel", None)
    with pytest.raises(ValueError, match="state is only used with mode='recurrent'"):
        check_sequence_input(x, 6, "parallel", ("state",))


def test_check_positive_ints_refuses_zero_bools_and_floats():
    @dataclass
    class ToyConfig:
        width: int = 4
        depth: int = 2

    check_positive_ints(ToyConfig(), "width", "depth")
    for bad in (0, -1, True, 2.0, None):
        with pytest.raises(ValueError, match=rf"^ToyConfig\.depth must be a positive int, got {bad!r}$"):
            check_positive_ints(ToyConfig(depth=bad), "width", "depth")
