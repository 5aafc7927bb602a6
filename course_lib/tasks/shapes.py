"""Chapter 02b's data: synthetic image–caption pairs drawn in code (no download): coloured shapes with captions.

Each image is one shape of one colour and one size on a dark, noisy background, at a random
position; its caption says what it is, e.g. ``"a small red ring"``. With 6 colours × 4 shapes ×
2 sizes there are 48 distinct captions, so image→text retrieval over all captions is a 48-way
zero-shot classification, and held-out images (new positions, sizes, noise) test generalisation.

    tok = WordTokenizer(CAPTION_WORDS)        # course_lib.tokenizers.word
    images, captions, labels = sample_batch(48, generator=torch.Generator().manual_seed(0))
    ids = tok.encode_batch(captions).input_ids  # (B, T) with <bos> … <eos> <pad>…
"""

from __future__ import annotations

import itertools

import torch

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.95, 0.15, 0.15), "green": (0.15, 0.85, 0.2), "blue": (0.2, 0.35, 1.0),
    "yellow": (0.95, 0.9, 0.15), "purple": (0.7, 0.2, 0.9), "white": (0.95, 0.95, 0.95),
}
SHAPES = ("ring", "square", "triangle", "cross")
SIZES = ("small", "large")
CLASSES: tuple[tuple[str, str, str], ...] = tuple(itertools.product(SIZES, COLOURS, SHAPES))  # (size, colour, shape)


def caption(size: str, colour: str, shape: str) -> str:
    """The caption of one class, e.g. ``caption("small", "red", "ring") == "a small red ring"``."""
    return f"a {size} {colour} {shape}"


CAPTIONS: tuple[str, ...] = tuple(caption(*c) for c in CLASSES)  # index = class label
CAPTION_WORDS: tuple[str, ...] = ("a", *SIZES, *COLOURS, *SHAPES)  # the vocabulary of every caption


def render(labels: torch.Tensor, image_size: int = 32, generator: torch.Generator | None = None,
           noise: float = 0.05) -> torch.Tensor:
    """Images ``(B, 3, S, S)`` in [0, 1] for class ``labels`` (B,) (indices into :data:`CLASSES`),
    each shape at a random position with random size jitter, brightness, background tint and noise."""
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
    if labels.dim() != 1 or labels.dtype != torch.long or (labels < 0).any() or (labels >= len(CLASSES)).any():
        raise ValueError(f"labels must be a (B,) long tensor of class indices in [0, {len(CLASSES)})")
    g, s, b = generator, image_size, labels.shape[0]
    size_idx = torch.tensor([SIZES.index(CLASSES[i][0]) for i in labels.tolist()])
    shape_idx = torch.tensor([SHAPES.index(CLASSES[i][2]) for i in labels.tolist()])
    rgb = torch.tensor([COLOURS[CLASSES[i][1]] for i in labels.tolist()])  # (B, 3)
    low, high = torch.tensor([0.17, 0.30])[size_idx], torch.tensor([0.22, 0.40])[size_idx]
    radius = s * (low + (high - low) * torch.rand(b, generator=g))  # (B,)
    cy, cx = (radius + (s - 2 * radius) * torch.rand(b, generator=g) for _ in range(2))  # inside the image
    grid = torch.arange(s) + 0.5
    dy = grid[None, :, None] - cy[:, None, None]  # (B, S, 1)
    dx = grid[None, None, :] - cx[:, None, None]  # (B, 1, S)
    r = radius[:, None, None]
    arm = 0.32 * r
    masks = torch.stack([
        (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.5 * r) ** 2),                      # ring
        (dx.abs() <= 0.85 * r) & (dy.abs() <= 0.85 * r),                                  # square
        (dy <= 0.8 * r) & (dy >= -r + 2 * dx.abs()),                                      # triangle, apex up
        ((dx.abs() <= arm) & (dy.abs() <= r)) | ((dy.abs() <= arm) & (dx.abs() <= r)),    # cross
    ])  # (4, B, S, S)
    mask = masks[shape_idx, torch.arange(b)]  # (B, S, S)
    background = 0.1 + 0.1 * torch.rand(b, 3, 1, 1, generator=g)  # dark, slightly tinted
    colour = (rgb * (0.85 + 0.15 * torch.rand(b, 1, generator=g)))[..., None, None]  # (B, 3, 1, 1), brightness jitter
    images = torch.where(mask[:, None], colour, background)  # (B, 3, S, S)
    images = images + noise * torch.randn(b, 3, s, s, generator=g)
    return images.clamp(0.0, 1.0)


def draw_shape(shape: str, colour: str, size: str, image_size: int = 32,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """One image ``(3, S, S)`` of the named class, e.g. ``draw_shape("ring", "red", "small")``."""
    if (size, colour, shape) not in CLASSES:
        raise ValueError(f"unknown class ({size!r}, {colour!r}, {shape!r}); "
                         f"sizes {SIZES}, colours {tuple(COLOURS)}, shapes {SHAPES}")
    return render(torch.tensor([CLASSES.index((size, colour, shape))]), image_size, generator)[0]


def sample_batch(batch_size: int, image_size: int = 32, generator: torch.Generator | None = None,
                 distinct: bool = True) -> tuple[torch.Tensor, list[str], torch.Tensor]:
    """``(images (B, 3, S, S), captions, labels (B,))``.

    With ``distinct=True`` (the default, for contrastive training) the classes of a batch are drawn
    without replacement while possible, so no caption appears twice in a batch of ≤ 48 and every
    other caption in the batch is a true negative for InfoNCE.
    """
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = len(CLASSES)
    if distinct:
        reps = -(-batch_size // n)
        labels = torch.cat([torch.randperm(n, generator=generator) for _ in range(reps)])[:batch_size]
    else:
        labels = torch.randint(0, n, (batch_size,), generator=generator)
    return render(labels, image_size, generator), [CAPTIONS[i] for i in labels.tolist()], labels
