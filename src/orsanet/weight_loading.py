"""The one way weights get into a built module: checked, with a one-line error naming the source.

    load_weights(model, state, "file.safetensors")                        # strict: every key, every shape
    load_weights(model, state, path, fresh=("ssgm.", "mcm."))             # partial: these may be missing
    load_weights(model, state, path, ignore=("head.",), prefix="trunk.")  # key filters, one sub-module

Used by model files (``orsanet.checkpoint``), initialisation from another model (``model.init``),
the authors' checkpoints and component files (``orsanet.official``) and the shipped face
detector and mesh (``orsanet.priors``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CheckpointError(ValueError):
    """A model or weights file that cannot be read, or does not fit the module it is loaded into."""


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], source: str, *, prefix: str = "",
                 fresh: Sequence[str] = (), ignore: Sequence[str] = (), dtype: torch.dtype | None = None) -> list[str]:
    """Copy ``state`` into ``module`` and return the module keys left at their initial values.

    ``prefix``: only the module's keys under it are loaded (state keys are given without it);
    ``fresh``: module keys with these prefixes may be absent from ``state`` (they keep their
    initial values); ``ignore``: state keys with these prefixes are dropped first. Every other
    key must match in both directions with the same shape, else a ``CheckpointError`` names
    ``source`` and the first offending keys. ``dtype``: cast floating tensors (e.g. float16 files).
    """
    expected = {key: value for key, value in module.state_dict().items() if key.startswith(prefix)}
    given = {prefix + key: value for key, value in state.items() if not key.startswith(tuple(ignore))}
    missing = [key for key in expected if key not in given]
    not_fresh = [key for key in missing if not key[len(prefix):].startswith(tuple(fresh))]
    unexpected = [key for key in given if key not in expected]
    if not_fresh:
        raise CheckpointError(f"{source}: {len(not_fresh)} missing keys, e.g. {', '.join(not_fresh[:3])}")
    if unexpected:
        raise CheckpointError(f"{source}: {len(unexpected)} unexpected keys, e.g. {', '.join(unexpected[:3])}")
    for key, value in given.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{source}: shape mismatch for {key}: file has {tuple(value.shape)}, "
                               f"model expects {tuple(expected[key].shape)}")
    if dtype is not None:
        given = {key: value.to(dtype) if value.is_floating_point() else value for key, value in given.items()}
    module.load_state_dict(given, strict=not missing and not prefix)
    return missing
