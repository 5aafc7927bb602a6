"""Attention maps as data: validate, stack and mask them for the heatmap widgets.

Every course model returns its attention weights as a tuple with one ``(B, H, T_q, T_k)``
tensor per layer (``docs/NOTES.md``, "Model outputs and attention maps"), like transformers.
This module turns such tuples into :class:`AttentionMaps` (one numpy array ``(L, H, T_q, T_k)``
per *kind*: ``"self"`` for decoder-only / encoder-only models, ``"encoder self"``,
``"decoder self"`` and ``"cross"`` for encoder-decoder models) and checks them on the way:

* ranks, equal shapes across layers, token counts that match ``T_q`` and ``T_k``;
* NaN / inf / negative weights raise ``ValueError``;
* each row is a softmax, Σ_j a_ij = 1: rows that do not sum to 1 (other than all-zero rows,
  i.e. fully masked queries) give a ``UserWarning``;
* causal attention (all weights above the diagonal exactly 0) is detected, and those cells are
  stored as NaN so that they render as *masked*, not as zero attention.

Downsampling (:func:`pool`) and axis labels live in :mod:`course_lib.viz.attention_display`, re-exported here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from course_lib.viz.attention_display import axis_labels as axis_labels
from course_lib.viz.attention_display import pool as pool
from course_lib.viz.attention_display import tick_positions as tick_positions

SELF = "self"
ENCODER_DECODER_KINDS = ("encoder self", "decoder self", "cross")
ROW_SUM_TOLERANCE = 1e-3  # |Σ_j a_ij − 1| above this warns (fp32 softmax rows sum to 1 within ~1e-6)


@dataclass
class AttentionKind:
    """The attention maps of one kind (e.g. ``"cross"``) for one sequence of the batch."""

    weights: np.ndarray        # (L, H, T_q, T_k) float32; masked cells are NaN
    query_tokens: list[str]    # T_q labels of the rows
    key_tokens: list[str]      # T_k labels of the columns
    causal: bool               # True: cells above the (offset) diagonal are masked

    @property
    def num_layers(self) -> int:
        """Number of layers of this attention kind."""
        return self.weights.shape[0]

    @property
    def num_heads(self) -> int:
        """Number of heads per layer."""
        return self.weights.shape[1]

    def matrix(self, layer: int, head: int | None) -> np.ndarray:
        """The ``(T_q, T_k)`` map of ``layer`` and ``head`` (``head=None``: mean over heads)."""
        if not isinstance(layer, (int, np.integer)) or not 0 <= layer < self.num_layers:
            raise ValueError(f"layer must be an int in [0, {self.num_layers}), got {layer!r}")
        if head is None:
            return self.weights[layer].mean(axis=0)  # (T_q, T_k); NaN stays NaN in masked cells
        if not isinstance(head, (int, np.integer)) or not 0 <= head < self.num_heads:
            raise ValueError(f"head must be an int in [0, {self.num_heads}) or None (mean), got {head!r}")
        return self.weights[layer, head]


@dataclass
class AttentionMaps:
    """All kinds of attention of one model call, keyed by kind name (insertion order = menu order)."""

    kinds: dict[str, AttentionKind]

    def __getitem__(self, kind: str) -> AttentionKind:
        if kind not in self.kinds:
            raise ValueError(f"kind must be one of {list(self.kinds)}, got {kind!r}")
        return self.kinds[kind]

    @property
    def names(self) -> list[str]:
        """The attention kinds present, in display order."""
        return list(self.kinds)


def _check_tokens(tokens, name: str, expected: int, what: str) -> list[str]:
    if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence):
        raise TypeError(f"{name} must be a list of token strings, got {type(tokens).__name__}")
    bad = [t for t in tokens if not isinstance(t, str)]
    if bad:
        raise TypeError(f"{name} must hold strings (decode ids first), got {type(bad[0]).__name__} {bad[0]!r}")
    if len(tokens) != expected:
        raise ValueError(f"{name} has {len(tokens)} tokens but the attention maps have {what}={expected}")
    return list(tokens)


def _to_numpy_layer(layer, index: int) -> np.ndarray:
    if layer is None:
        raise ValueError(
            f"attentions[{index}] is None: the model did not return attention weights "
            "(for transformers models load them with attn_implementation='eager')"
        )
    if isinstance(layer, torch.Tensor):
        if not layer.is_floating_point():
            raise TypeError(f"attentions[{index}] must be a floating-point tensor, got {layer.dtype}")
        return layer.detach().to("cpu", torch.float32).numpy()
    if isinstance(layer, np.ndarray):
        if layer.dtype.kind != "f":
            raise TypeError(f"attentions[{index}] must be a floating-point array, got {layer.dtype}")
        return layer.astype(np.float32, copy=False)
    raise TypeError(f"attentions[{index}] must be a torch.Tensor or numpy array, got {type(layer).__name__}")


def stack_layers(attentions, batch_index: int = 0, name: str = "attentions") -> np.ndarray:
    """Stack per-layer ``(B, H, T_q, T_k)`` maps into ``(L, H, T_q, T_k)`` for batch row ``batch_index``."""
    if isinstance(attentions, (torch.Tensor, np.ndarray)) or not isinstance(attentions, Sequence):
        raise TypeError(
            f"{name} must be a list/tuple with one (B, H, T_q, T_k) tensor per layer, "
            f"got {type(attentions).__name__}"
        )
    if len(attentions) == 0:
        raise ValueError(f"{name} is empty: expected one (B, H, T_q, T_k) tensor per layer")
    layers = []
    for i, layer in enumerate(attentions):
        array = _to_numpy_layer(layer, i)
        if array.ndim != 4:
            raise ValueError(f"{name}[{i}] must have rank 4 (B, H, T_q, T_k), got shape {tuple(array.shape)}")
        if layers and array.shape != layers[0].shape:
            raise ValueError(f"{name}[{i}] has shape {tuple(array.shape)} but {name}[0] has {tuple(layers[0].shape)}")
        layers.append(array)
    batch = layers[0].shape[0]
    if not isinstance(batch_index, (int, np.integer)) or not 0 <= batch_index < batch:
        raise ValueError(f"batch_index must be an int in [0, {batch}), got {batch_index!r}")
    return np.stack([layer[batch_index] for layer in layers])  # (L, H, T_q, T_k)


def check_weights(weights: np.ndarray, name: str = "attentions") -> None:
    """Raise on NaN/inf/negative weights; warn when a row is neither a softmax nor fully masked."""
    finite = np.isfinite(weights)
    if not finite.all():
        layer, head, row, col = np.argwhere(~finite)[0]
        raise ValueError(f"{name} holds NaN or inf (first at layer {layer}, head {head}, query {row}, key {col})")
    if (weights < 0).any():
        layer, head, row, col = np.argwhere(weights < 0)[0]
        raise ValueError(f"{name} holds negative weights (first at layer {layer}, head {head}, query {row}, key {col})")
    sums = weights.sum(axis=-1, dtype=np.float64)  # (L, H, T_q)
    off = (np.abs(sums - 1.0) > ROW_SUM_TOLERANCE) & (sums != 0.0)
    if off.any():
        layer, head, row = np.argwhere(off)[0]
        warnings.warn(
            f"{name}: {int(off.sum())} rows do not sum to 1 (first: layer {layer}, head {head}, query {row} "
            f"sums to {sums[layer, head, row]:.4f}); are these softmax weights (dropout off, model.eval())?",
            UserWarning,
            stacklevel=3,
        )


def causal_upper(t_q: int, t_k: int) -> np.ndarray:
    """Boolean ``(T_q, T_k)``: True strictly above the causal diagonal (query i sees keys ≤ i + T_k − T_q).

    The complement of :func:`course_lib.attention.causal_mask`, for the display.
    """
    return ~np.tril(np.ones((t_q, t_k), dtype=bool), k=t_k - t_q)


def is_causal(weights: np.ndarray) -> bool:
    """True when every weight above the causal diagonal is exactly 0 (and there is such a cell)."""
    t_q, t_k = weights.shape[-2:]
    if t_q > t_k:
        return False
    upper = causal_upper(t_q, t_k)
    return bool(upper.any()) and not weights[..., upper].any()


def prepare_kind(attentions, query_tokens, key_tokens=None, *, batch_index: int = 0, causal: bool | None = None,
                 name: str = "attentions") -> AttentionKind:
    """Validate one kind of attention and return it stacked, with the causal cells masked as NaN.

    ``causal=None`` detects the mask from the weights; ``True`` masks the upper triangle (and
    warns if it holds weight); ``False`` shows every cell.
    """
    weights = stack_layers(attentions, batch_index, name)  # (L, H, T_q, T_k)
    t_q, t_k = weights.shape[-2:]
    if key_tokens is None and t_q != t_k:
        raise ValueError(f"{name} is rectangular ({t_q} queries × {t_k} keys): pass key_tokens for the keys")
    query_tokens = _check_tokens(query_tokens, "tokens" if name == "attentions" else f"{name} query tokens",
                                 t_q, "T_q")
    key_tokens = query_tokens if key_tokens is None else _check_tokens(
        key_tokens, "key_tokens" if name == "attentions" else f"{name} key tokens", t_k, "T_k")
    check_weights(weights, name)
    if causal not in (None, True, False):
        raise TypeError(f"causal must be True, False or None (detect), got {causal!r}")
    if causal is None:
        causal = is_causal(weights)
    if causal:
        if t_q > t_k:
            raise ValueError(f"causal=True needs T_q <= T_k, got {t_q} queries × {t_k} keys")
        upper = causal_upper(t_q, t_k)
        if weights[..., upper].any():
            warnings.warn(f"{name}: causal=True hides non-zero weights above the diagonal", UserWarning,
                          stacklevel=2)
        weights[..., upper] = np.nan
    return AttentionKind(weights, query_tokens, key_tokens, bool(causal))


def prepare(attentions, tokens=None, key_tokens=None, *, batch_index: int = 0,
            causal: bool | None = None) -> AttentionMaps:
    """Build :class:`AttentionMaps` from a per-layer tuple or a dict of kinds.

    * ``attentions`` a list/tuple of ``(B, H, T_q, T_k)`` tensors: one kind ``"self"``, rows
      labelled by ``tokens`` and columns by ``key_tokens`` (default: ``tokens``).
    * ``attentions`` a dict ``{kind: (attentions, query_tokens, key_tokens)}`` (``key_tokens``
      may be ``None`` for self-attention): one entry per kind, e.g. ``"encoder self"``,
      ``"decoder self"``, ``"cross"``; ``tokens``/``key_tokens`` must then be ``None``.
    """
    if isinstance(attentions, Mapping):
        if tokens is not None or key_tokens is not None:
            raise ValueError("with a dict of kinds, give the tokens inside it: {kind: (attentions, query_tokens, "
                             "key_tokens)}, not as tokens=/key_tokens=")
        if not attentions:
            raise ValueError("attentions dict is empty: expected {kind: (attentions, query_tokens, key_tokens)}")
        kinds = {}
        for kind, entry in attentions.items():
            if not isinstance(kind, str):
                raise TypeError(f"attention kinds must be named by strings, got {kind!r}")
            if not isinstance(entry, (tuple, list)) or len(entry) != 3:
                raise ValueError(f"attentions[{kind!r}] must be (attentions, query_tokens, key_tokens), "
                                 f"got {type(entry).__name__} of length {len(entry) if hasattr(entry, '__len__') else '?'}")
            layers, queries, keys = entry
            kinds[kind] = prepare_kind(layers, queries, keys, batch_index=batch_index, causal=causal,
                                       name=f"attentions[{kind!r}]")
        return AttentionMaps(kinds)
    if tokens is None:
        raise ValueError("tokens is required: one string per query position")
    return AttentionMaps({SELF: prepare_kind(attentions, tokens, key_tokens, batch_index=batch_index,
                                             causal=causal)})


def from_model_output(output, tokens, key_tokens=None) -> dict | tuple:
    """Pick the attention maps out of a model output (course models and transformers alike).

    Encoder-decoder outputs (``encoder_attentions``, ``decoder_attentions``,
    ``cross_attentions``) become a dict of kinds where ``tokens`` label the decoder (queries of
    cross attention) and ``key_tokens`` the encoder input; other outputs give ``attentions``.
    """
    def field(name):  # None when absent or empty (transformers 5 BERT returns cross_attentions=())
        value = getattr(output, name, None)
        if value is None and isinstance(output, Mapping):
            value = output.get(name)
        return value if value is None or len(value) else None

    encoder, decoder, cross = (field(n) for n in ("encoder_attentions", "decoder_attentions", "cross_attentions"))
    if encoder is not None or decoder is not None or cross is not None:
        if key_tokens is None:
            raise ValueError("an encoder-decoder output needs tokens= (decoder input) and key_tokens= (encoder input)")
        kinds = {}
        for kind, layers, queries, keys in (("encoder self", encoder, key_tokens, None),
                                            ("decoder self", decoder, tokens, None),
                                            ("cross", cross, tokens, key_tokens)):
            if layers is not None:
                kinds[kind] = (layers, queries, keys)
        return kinds
    attentions = field("attentions")
    if attentions is None:
        present = hasattr(output, "attentions") or (isinstance(output, Mapping) and "attentions" in output)
        raise ValueError(
            f"the model output ({type(output).__name__}) holds no attention weights (attentions is empty): "
            "transformers models return them only with attn_implementation='eager' (SDPA/flash kernels do not)"
            if present else
            f"the model output ({type(output).__name__}) has no attention maps: expected an `attentions` field "
            "(or encoder_attentions/decoder_attentions/cross_attentions); does forward() accept "
            "output_attentions=True?"
        )
    return attentions
