"""Occlusion manifests: one JSON line per image (``image``, ``kind``, ``seed``, ``geometry``),
so that anyone can rebuild an occluded test set bit for bit.

The seed of an image is derived from a base seed and the image's name (a BLAKE2b hash), so an
image gets the same occlusion whatever the order of the set and whichever other images are in
it. Rows are streamed to disk and flushed one by one, so a long run killed half-way keeps what it
wrote.

    with ManifestWriter("occlusion.jsonl") as out:
        for name, image, points in faces:
            occluded, mask, row = occlude_named(image, points, name, "realistic", base_seed=0)
            out.write(row)
    rows = read_manifest("occlusion.jsonl")
    occluded, mask = rebuild(image, points, rows[0])
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from .api import apply, jsonable, occlude, sample
from .layout import face_layout

logger = logging.getLogger(__name__)


def image_seed(base_seed: int, name: str) -> int:
    """63-bit seed of image ``name`` under ``base_seed`` (independent of any other image)."""
    digest = hashlib.blake2b(f"{int(base_seed)}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def occlude_named(image: torch.Tensor, points: torch.Tensor | None, name: str, kind: str, base_seed: int = 0,
                  **params) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """:func:`~orsanet.occlusion.occlude` with the image's own seed; returns the image
    ``(3, H, W)``, the mask ``(H, W)`` and the manifest row (with ``params`` when given)."""
    seed = image_seed(base_seed, name)
    occluded, mask, geometry = occlude(image, points, kind, seed, **params)
    row = {"image": name, "kind": kind, "seed": seed, "geometry": geometry}
    if params:
        row["params"] = jsonable(params)
    return occluded, mask, row


class ManifestWriter:
    """Append rows to a JSON Lines file, flushing after each one. A context manager."""

    def __init__(self, path: str | Path, append: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a" if append else "w", encoding="utf-8")
        self.count = 0

    def write(self, row: dict) -> None:
        for key in ("image", "kind", "seed", "geometry"):
            if key not in row:
                raise KeyError(f"manifest row lacks {key!r}")
        self._file.write(json.dumps(jsonable(row), separators=(",", ":")) + "\n")
        self._file.flush()
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            logger.info("wrote %d occlusion rows to %s", self.count, self.path)

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_manifest(path: str | Path) -> Iterator[dict]:
    """Rows of a manifest, one at a time (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not a JSON row ({err})") from None


def read_manifest(path: str | Path) -> list[dict]:
    """All rows of a manifest."""
    return list(iter_manifest(path))


def rebuild(image: torch.Tensor, points: torch.Tensor | None, row: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The occluded image ``(3, H, W)`` and mask ``(H, W)`` of a manifest ``row``: drawn from
    its geometry, bit-identical to the original; from ``kind`` and ``seed`` (needs the same
    ``points``) when a row carries no geometry."""
    geometry = row.get("geometry")
    if geometry is None:
        drawn = sample(row["kind"], np.random.default_rng(int(row["seed"])), face_layout(points),
                       tuple(image.shape[-2:]), **row.get("params", {}))
        geometry = jsonable(drawn)
    return apply(image, points, geometry)
