"""Demo tasks and their data, one module per chapter task (chapter code stays out of the general modules)."""

from course_lib.tasks.reversal import (
    FULL_MODEL,
    FULL_TASK,
    FULL_TRAINING,
    SMALL_MODEL,
    SMALL_TASK,
    SMALL_TRAINING,
    ReversalTask,
    fit_reversal,
)
from course_lib.tasks.shapes import SHAPES, SIZES, caption, draw_shape, render, sample_batch

__all__ = ["FULL_MODEL", "FULL_TASK", "FULL_TRAINING", "ReversalTask", "SHAPES", "SIZES", "SMALL_MODEL",
           "SMALL_TASK", "SMALL_TRAINING", "caption", "draw_shape", "fit_reversal", "render", "sample_batch"]
