"""One way in from transformers for every model family: read the config, refuse what we do not implement, load the weights.

Every family offers ``Config.from_hf(config)`` and ``Model.from_hf(config, state_dict)``; ``config`` is
a transformers config object or its ``config.json`` dict, ``state_dict`` uses the HF parameter names.
The pieces they share live here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

import torch
from torch import nn


def config_dict(config) -> dict:
    """A transformers ``PretrainedConfig`` or a ``config.json`` mapping, as a plain dict of HF field names."""
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise TypeError(f"config must be a transformers config or a config.json dict, got {type(config).__name__}")


def config_from_hf(cls, config, supported: Mapping[str, tuple] = (), **values):
    """``cls(**fields)`` from the HF fields of the same name, after :func:`refuse_unsupported`; ``values`` override."""
    hf = config_dict(config)
    refuse_unsupported(hf, dict(supported), cls.__name__)
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in hf.items() if k in names and k not in values}, **values)


def refuse_unsupported(hf: Mapping, supported: Mapping[str, tuple], owner: str) -> None:
    """Raise ``ValueError`` naming every HF setting whose value this implementation would silently compute differently.

    ``supported`` maps an HF field to the values we implement; a missing field takes the HF default,
    which is always supported.
    """
    bad = {k: hf[k] for k, ok in supported.items() if k in hf and hf[k] not in ok}
    if bad:
        detail = ", ".join(f"{k}={v!r} (supported: {', '.join(map(repr, supported[k]))})" for k, v in bad.items())
        raise ValueError(f"{owner} does not implement the transformers setting(s) {detail}")


def load_hf_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], tied: Mapping[str, str] = {}) -> nn.Module:
    """Strictly load ``state_dict`` into ``model`` and return it in eval mode.

    ``tied`` maps each HF copy of a shared tensor (e.g. ``lm_head.weight``) to the name it copies: the copy
    must be equal and is then dropped, since our model holds the tensor once.
    """
    state = dict(state_dict)
    for copy, source in tied.items():
        if copy in state:
            if source in state and not torch.equal(state[copy], state[source]):
                raise ValueError(f"{copy} differs from {source}: this model needs them tied")
            del state[copy]
    model.load_state_dict(state, strict=True)
    return model.eval()
