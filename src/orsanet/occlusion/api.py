"""One entry point for every kind: :func:`occlude` samples a geometry from a seed and draws it,
:func:`apply` re-draws a stored geometry bit for bit without any random generator.

A generator (``KINDS[name]``) is ``fn(rng, layout, size, **params) -> geometry`` with ``rng`` a
``numpy.random.Generator``, ``layout`` a :class:`~orsanet.occlusion.layout.FaceLayout` and
``size`` the crop's ``(H, W)``. A geometry is a JSON-ready dict: ``kind``, ``seed``, ``params``
(what was chosen, for people), ``layers`` (what is drawn, see :mod:`~orsanet.occlusion.draw`),
and ``group`` when it was picked from a group. Floats are rounded to 6 decimals before drawing,
so the geometry read back from JSON draws exactly what :func:`occlude` drew.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache, partial

import numpy as np
import torch

from . import realistic
from .draw import render
from .layout import FaceLayout, face_layout
from .regions import REGIONS, region_occluder
from .square import square
from .textured import textured

Generator = Callable[..., dict]

KINDS: dict[str, Generator] = {
    "square_black": partial(square, fill="black"), "square_mean": partial(square, fill="mean"),
    **{name: partial(region_occluder, region=name) for name in REGIONS},
    **{name: getattr(realistic, name) for name in ("medical_mask", "cloth_mask", "sunglasses", "glasses", "hand",
                                                   "hair", "scarf", "cup", "microphone")},
    "textured": textured,
}
GROUPS: dict[str, tuple[str, ...]] = {
    "square": ("square_black", "square_mean"),
    "regions": REGIONS,
    "realistic": ("medical_mask", "cloth_mask", "sunglasses", "glasses", "hand", "hair", "scarf", "cup",
                  "microphone", "textured"),
}


@cache
def _accepted(kind: str) -> frozenset[str]:
    """Keyword parameters a kind (or any member of a group) accepts."""
    if kind in GROUPS:
        return frozenset().union(*(_accepted(member) for member in GROUPS[kind]))
    fn = KINDS[kind]
    bound = set(fn.keywords) if isinstance(fn, partial) else set()  # e.g. square_black's fill
    return frozenset(p.name for p in inspect.signature(fn).parameters.values()
                     if p.kind == p.KEYWORD_ONLY and p.name not in bound)


def _group(name: str) -> Generator:
    def choose_member(rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], **params) -> dict:
        member = GROUPS[name][int(rng.integers(len(GROUPS[name])))]
        geometry = sample(member, rng, layout, size, strict=False, **params)
        geometry["group"] = name
        return geometry

    choose_member.__doc__ = f"Pick one of {GROUPS[name]} at random."
    return choose_member


KINDS.update({name: _group(name) for name in GROUPS})


def sample(kind: str, rng: np.random.Generator, layout: FaceLayout, size: tuple[int, int], strict: bool = True,
           **params) -> dict:
    """Geometry of one occluder of ``kind``. Parameters the kind does not take raise a
    TypeError when ``strict``, else are dropped (so a group can forward e.g. ``area``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown occlusion kind {kind!r}; expected one of {sorted(KINDS)}")
    unknown = set(params) - _accepted(kind)
    if unknown and strict:
        raise TypeError(f"occlusion kind {kind!r} takes no parameter(s) {sorted(unknown)}")
    params = {k: v for k, v in params.items() if k not in unknown}
    return KINDS[kind](rng, layout, (int(size[0]), int(size[1])), **params)


def to_seed(rng_or_seed: int | np.random.Generator | torch.Generator) -> int:
    """An int seed, drawn from a generator when one is given (so it advances)."""
    if isinstance(rng_or_seed, np.random.Generator):
        return int(rng_or_seed.integers(0, 2 ** 63 - 1))
    if isinstance(rng_or_seed, torch.Generator):
        return int(torch.randint(0, 2 ** 63 - 1, (1,), generator=rng_or_seed))
    return int(rng_or_seed)


def jsonable(value):
    """Plain JSON types: tuples -> lists, numpy scalars -> Python, floats rounded to 6 decimals."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 6)
    return value


def occlude(image: torch.Tensor, points: torch.Tensor | None, kind: str,
            rng_or_seed: int | np.random.Generator | torch.Generator = 0,
            **params) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Occlude a crop ``image (3, H, W)`` in [0, 1] with one occluder of ``kind``, placed from
    mesh ``points (468, 2)`` in [0, 1] crop units (None: the average face).

    Returns the occluded image ``(3, H, W)`` float32 in [0, 1], the mask ``(H, W)`` bool (True
    where the occluder hides the face) and the JSON-ready geometry (with its ``seed``).
    """
    seed = to_seed(rng_or_seed)
    geometry = sample(kind, np.random.default_rng(seed), face_layout(points), tuple(image.shape[-2:]), **params)
    geometry = jsonable({"kind": geometry.pop("kind"), "seed": seed, **geometry})
    return (*apply(image, points, geometry), geometry)


def apply(image: torch.Tensor, points: torch.Tensor | None, geometry: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-draw a stored ``geometry`` on ``image (3, H, W)``: bit-identical to what
    :func:`occlude` returned. ``points`` are not needed (the geometry holds absolute positions)
    and are accepted only so that both functions take the same inputs."""
    del points
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image (3, H, W), got {tuple(image.shape)}")
    pixels = image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    out, mask = render(pixels, geometry["layers"])
    return (torch.from_numpy(out).permute(2, 0, 1).contiguous().to(image.device),
            torch.from_numpy(mask).to(image.device))
