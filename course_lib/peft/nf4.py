"""NF4 (4-bit NormalFloat) with double quantization, the storage format of QLoRA (Dettmers et al. 2023, §3).

**NF4.** Pretrained weights are roughly normal, so the 16 code values are quantiles of N(0, 1)
rescaled to [-1, 1] (§3 "4-bit NormalFloat Quantization", eq. 4), with an exact zero: 8 positive
quantiles, 7 negative ones and 0. bitsandbytes builds them as ``create_normal_map(offset=0.9677083)``
(``bitsandbytes/functional.py``) and hard-codes the result (``get_4bit_type("nf4")``; QLoRA App. E)::

    positive: Φ⁻¹(p) for p in linspace(offset, 0.5, 9)[:-1]
    negative: −Φ⁻¹(p) for p in linspace(offset, 0.5, 8)[:-1]
    codebook = sort(positive ∪ negative ∪ {0}) / max

Each block of 64 consecutive weights (row-major) keeps its absmax ``c = max|w|`` in fp32 and
each weight the index of the code nearest to ``w / c`` (4 bits, two per byte, the first one in the
high nibble as bitsandbytes packs them); dequantization is ``w ≈ c · codebook[index]``.

**Double quantization** (§3 "Double Quantization"): the fp32 absmax constants (4/64 = 0.5 bit per
weight) are themselves quantized to 8 bits in blocks of 256 after subtracting their mean (they are
all positive; centring them uses the signed range), which leaves 8/64 + 32/(64·256) ≈ 0.127 bit per
weight. bitsandbytes stores those 8 bits with its "dynamic" 8-bit float map; here they are plain
symmetric int8 (``round(127 · x / max|x|)`` per block), which is simpler and as accurate for these
smooth constants.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 64          # weights per NF4 block (one fp32 absmax each)
DQ_BLOCK = 256      # absmax constants per second-level block (one fp32 scale each)
OFFSET = 0.9677083  # outermost quantile of the NF4 map (bitsandbytes create_normal_map)


def nf4_codebook(offset: float = OFFSET) -> torch.Tensor:
    """The 16 NF4 values in [-1, 1], ascending (QLoRA §3 eq. 4, bitsandbytes ``create_normal_map``)."""
    if not 0.5 < offset < 1.0:
        raise ValueError(f"offset must be a probability in (0.5, 1), got {offset}")
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())   # (8,) quantiles above the median
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())  # (7,)
    values = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).float().sort().values  # (16,)
    return values / values.max()


def quantize_nf4(w: torch.Tensor, block: int = BLOCK) -> tuple[torch.Tensor, torch.Tensor]:
    """``w`` -> (packed 4-bit indices ``(numel/2,)`` uint8, absmax per block ``(numel/block,)`` fp32)."""
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"w must be a floating-point tensor, got {type(w).__name__}")
    if block % 2 or w.numel() % block:
        raise ValueError(f"w.numel() = {w.numel()} must be a multiple of an even block size, got block={block}")
    blocks = w.detach().float().reshape(-1, block)                              # (nb, block), row-major order
    absmax = blocks.abs().amax(dim=1)                                           # (nb,)
    scaled = blocks / absmax.clamp(min=torch.finfo(torch.float32).tiny)[:, None]  # (nb, block) in [-1, 1]
    codebook = nf4_codebook()
    bounds = (codebook[1:] + codebook[:-1]) / 2                                 # (15,) midpoints: nearest code
    index = torch.bucketize(scaled.reshape(-1), bounds).to(torch.uint8)        # (numel,) in 0..15
    return (index[0::2] << 4) | index[1::2], absmax


def dequantize_nf4(packed: torch.Tensor, absmax: torch.Tensor, shape: tuple[int, ...] | torch.Size,
                   block: int = BLOCK) -> torch.Tensor:
    """Packed indices and per-block absmax -> the fp32 weight of ``shape``: ``w = absmax · codebook[index]``."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be uint8, got {packed.dtype}")
    index = torch.stack([packed >> 4, packed & 0x0F], dim=-1).reshape(-1).long()  # (numel,) high nibble first
    values = nf4_codebook()[index].reshape(-1, block) * absmax[:, None]          # (nb, block)
    return values.reshape(shape)


def double_quantize(absmax: torch.Tensor, block: int = DQ_BLOCK) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """fp32 absmax ``(nb,)`` -> (int8 codes ``(nb,)``, fp32 scale per block of ``block``, fp32 mean)."""
    if absmax.dim() != 1 or absmax.numel() == 0 or block < 1:
        raise ValueError(f"absmax must be a non-empty 1-D tensor and block >= 1, got {tuple(absmax.shape)}, {block}")
    mean = absmax.mean()
    centred = F.pad(absmax - mean, (0, -absmax.numel() % block)).reshape(-1, block)  # (⌈nb/block⌉, block)
    scale = centred.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127  # (⌈nb/block⌉,)
    codes = torch.round(centred / scale[:, None]).to(torch.int8)               # (⌈nb/block⌉, block)
    return codes.reshape(-1)[: absmax.numel()], scale, mean


def double_dequantize(codes: torch.Tensor, scale: torch.Tensor, mean: torch.Tensor,
                      block: int = DQ_BLOCK) -> torch.Tensor:
    """Inverse of :func:`double_quantize`: int8 codes, per-block scales and the mean -> absmax ``(nb,)``."""
    if codes.dtype != torch.int8:
        raise TypeError(f"codes must be int8, got {codes.dtype}")
    if scale.numel() != -(-codes.numel() // block):
        raise ValueError(f"{codes.numel()} codes in blocks of {block} need {-(-codes.numel() // block)} scales, "
                         f"got {scale.numel()}")
    padded = F.pad(codes.float(), (0, scale.numel() * block - codes.numel())).reshape(scale.numel(), block)
    return (padded * scale[:, None]).reshape(-1)[: codes.numel()] + mean


def bits_per_weight(numel: int, double: bool, block: int = BLOCK, dq_block: int = DQ_BLOCK) -> float:
    """Storage bits per weight of NF4 (4-bit codes + absmax), with or without double quantization."""
    if numel <= 0 or numel % block:
        raise ValueError(f"numel must be a positive multiple of block={block}, got {numel}")
    n_blocks = numel // block
    if not double:
        return (4 * numel + 32 * n_blocks) / numel
    return (4 * numel + 8 * n_blocks + 32 * -(-n_blocks // dq_block) + 32) / numel  # + the fp32 mean
