"""Occluded copies of whole dataset trees, and the image helpers shared with ``orsanet robustness``.

:func:`occlude_tree` mirrors every file under ``data`` into ``out``: image files are occluded at
their native resolution and saved in their own format (PNG stays PNG, JPEG is written at quality
95), every other file (``label.csv``, READMEs...) is copied unchanged, so ``orsanet eval MODEL
OUT`` reads the copy with the same labels. Occluders are placed from the face mesh fitted on each
clean image (:class:`~orsanet.priors.face_priors.MeshPriors`; the average face where no mesh is
fitted), with the image's own seed ``image_seed(seed, relative path)``. Beside the images::

    OUT/occlusion_manifest.jsonl                 one row per image (streamed): image, kind, seed, geometry
    OUT/occlusion_masks/<relative path>.png      the mask, a 1-bit PNG at the image's size

A manifest row rebuilds its saved image bit for bit (PNG): load the clean image with
:func:`image_tensor`, ``rebuild(clean, None, row)`` and :func:`to_uint8`.

The occluded image is written as RGB whatever the source mode, because occluders have colour
(a grey FERPlus face with a blue medical mask stays blue for colour models; grey models grey
it themselves through their input contract).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orsanet.contract import to_rgb
from orsanet.data.base import IMAGE_SUFFIXES, UNREADABLE

from .api import occlude
from .manifest import ManifestWriter, image_seed, occlude_named

log = logging.getLogger(__name__)

MANIFEST_NAME = "occlusion_manifest.jsonl"
MASKS_DIR = "occlusion_masks"
JPEG_QUALITY = 95
SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".webp": "WEBP", ".tif": "TIFF",
                ".tiff": "TIFF", ".gif": "GIF", ".ppm": "PPM", ".pgm": "PPM"}


class OcclusionTreeError(ValueError):
    """Bad input for :func:`occlude_tree` (an output inside the data, a non-empty output...), in one line."""


# ------------------------------------------------------------------ image helpers
def image_tensor(image: Image.Image) -> torch.Tensor:
    """A PIL image (any mode) -> ``(3, H, W)`` float32 RGB in [0, 1] at its native size."""
    return torch.from_numpy(np.asarray(to_rgb(image), dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [0, 1] -> ``(H, W, 3)`` uint8 (rounded): the 8-bit image that is saved or shown.
    Pixels the occluder leaves alone come back exactly as they were read."""
    return (image.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def check_kind(kind: str, **params) -> None:
    """Raise ValueError when ``kind`` is unknown or does not take ``params`` (e.g. ``area`` for a region)."""
    try:
        occlude(torch.zeros(3, 16, 16), None, kind, 0, **params)
    except TypeError as error:
        raise ValueError(str(error)) from None
    except ImportError as error:
        raise ValueError(f"occlusion kind {kind!r} needs an optional package: {error}") from None


def placement_mesh(device: torch.device | str = "cpu"):
    """The face mesh that places occluders on a clean image, always in PyTorch: the places (and so the
    occluded images' digests) must not move with the runtime's float rounding."""
    from orsanet.priors.face_priors import MeshPriors

    return MeshPriors(device, runtime="pytorch")


def measure_points(images: Sequence[torch.Tensor], priors=None) -> list[torch.Tensor | None]:
    """The face-mesh points ``(468, 2)`` fitted on each clean image ``(3, H, W)`` (None where no face
    is fitted: the occluders then use the average face). Images of one size are measured together;
    ``priors``: a ``placement_mesh`` to reuse."""
    priors = priors if priors is not None else placement_mesh()
    points: list[torch.Tensor | None] = [None] * len(images)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        by_size.setdefault(tuple(image.shape[-2:]), []).append(i)
    for members in by_size.values():
        geometry = priors.measure(torch.stack([images[i] for i in members]))
        valid = priors.valid(geometry)
        for j, i in enumerate(members):
            if bool(valid[j]):
                points[i] = geometry["points"][j].cpu()
    return points


def save_image(array: np.ndarray, path: Path, format: str) -> None:
    """Write an ``(H, W, 3)`` uint8 image in ``format`` (JPEG at quality 95)."""
    options = {"quality": JPEG_QUALITY} if format == "JPEG" else {}
    Image.fromarray(array, "RGB").save(path, format=format, **options)


def save_mask(mask: torch.Tensor, path: Path) -> None:
    """Write an ``(H, W)`` bool mask as a 1-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.cpu().numpy().astype(bool)).convert("1").save(path, format="PNG")


# ------------------------------------------------------------------ the tree
def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _split_folder(data: Path, split: str) -> Path:
    """``data/split``; FERPlus split names (``test`` -> ``FER2013Test``) are understood too."""
    if (data / split).is_dir():
        return data / split
    from orsanet.data.ferplus import FERPLUS_SPLITS, SPLIT_ALIASES

    key = SPLIT_ALIASES.get(split.lower(), split.lower())
    if key in FERPLUS_SPLITS and (data / FERPLUS_SPLITS[key]).is_dir():
        return data / FERPLUS_SPLITS[key]
    folders = ", ".join(sorted(d.name for d in data.iterdir() if d.is_dir())) or "none"
    raise OcclusionTreeError(f"{data}: no split folder {split!r} (folders: {folders})")


def _walk(root: Path, data: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under ``root``, relative to ``data``, sorted; an earlier run's
    manifest and masks at the top of ``data`` are left out."""
    images, others = [], []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        if here == data:
            subdirs[:] = [d for d in subdirs if d != MASKS_DIR]
            files = [f for f in files if f != MANIFEST_NAME]
        subdirs.sort()
        for name in sorted(files):
            relative = (here / name).relative_to(data)
            (images if Path(name).suffix.lower() in IMAGE_SUFFIXES else others).append(relative)
    return images, others


def occlude_tree(data: str | os.PathLike, out: str | os.PathLike, kind: str, seed: int = 0,
                 area: float | None = None, split: str | None = None, overwrite: bool = False,
                 batch_size: int = 64, show: bool = True, device: str = "cpu", **params) -> dict:
    """Write an occluded copy of the dataset tree ``data`` to ``out`` (see the module docstring).

    ``kind``: an occlusion kind or group (``orsanet.occlusion.KINDS``); ``area`` (and any other
    ``params``) goes to the generator. ``split``: only this folder of ``data`` (mirrored at the same
    relative path). ``out`` must not lie inside ``data`` (nor contain it), and must be empty or
    absent unless ``overwrite``. Unreadable images are copied unchanged, with a warning and an
    ``error`` row in the manifest. Returns a summary dict.
    """
    from tqdm import tqdm

    data, out = Path(data).resolve(), Path(out).resolve()
    if not data.is_dir():
        raise OcclusionTreeError(f"{data}: no such dataset folder")
    if _inside(out, data):
        raise OcclusionTreeError(f"{out}: the output folder lies inside the data folder {data}")
    if _inside(data, out):
        raise OcclusionTreeError(f"{out}: the output folder contains the data folder {data}")
    if out.exists() and not out.is_dir():
        raise OcclusionTreeError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OcclusionTreeError(f"{out}: the output folder is not empty (pass --overwrite to write into it)")
    if batch_size < 1:
        raise OcclusionTreeError(f"batch size must be at least 1, got {batch_size}")
    if area is not None:
        params["area"] = float(area)
    try:
        check_kind(kind, **params)
    except ValueError as error:
        raise OcclusionTreeError(str(error)) from None
    root = _split_folder(data, split) if split else data
    images, others = _walk(root, data)
    out.mkdir(parents=True, exist_ok=True)

    for relative in others:
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(data / relative, out / relative)
    priors = placement_mesh(device)
    unreadable: list[str] = []
    fitted = occluded = 0
    with ManifestWriter(out / MANIFEST_NAME) as manifest, \
            tqdm(total=len(images), desc=f"occlude {kind}", unit="img", disable=not show) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            loaded: list[tuple[Path, torch.Tensor, str]] = []
            for relative in chunk:
                name = relative.as_posix()
                try:
                    with Image.open(data / relative) as image:
                        image_format = image.format
                        pixels = image_tensor(image)
                except UNREADABLE as error:
                    reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".strip()
                    log.warning("%s: unreadable image copied unchanged (%s)", name, reason)
                    unreadable.append(name)
                    (out / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(data / relative, out / relative)
                    manifest.write({"image": name, "kind": kind, "seed": image_seed(seed, name), "geometry": None,
                                    "error": reason})
                    bar.update()
                    continue
                suffix_format = SAVE_FORMATS.get(relative.suffix.lower())
                loaded.append((relative, pixels, suffix_format or image_format or "PNG"))
            points = measure_points([pixels for _, pixels, _ in loaded], priors) if loaded else []
            for (relative, pixels, image_format), face in zip(loaded, points):
                name = relative.as_posix()
                image, mask, row = occlude_named(pixels, face, name, kind, seed, **params)
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                save_image(to_uint8(image), target, image_format)
                mask_name = f"{MASKS_DIR}/{name}.png"
                save_mask(mask, out / mask_name)
                manifest.write({**row, "size": list(pixels.shape[-2:]), "face": "mesh" if face is not None else
                                "average", "format": image_format, "mask": mask_name})
                fitted += face is not None
                occluded += 1
                bar.update()
    summary = {"data": str(data), "out": str(out), "kind": kind, "seed": int(seed), "params": params,
               "split": split, "images": len(images), "occluded": occluded, "faces_fitted": fitted,
               "unreadable_images": unreadable, "files_copied": len(others) + len(unreadable),
               "manifest": str(out / MANIFEST_NAME), "masks": str(out / MASKS_DIR)}
    log.info("%s: %d images occluded with %s (mesh fitted on %d), %d unreadable, %d other files copied", out,
             occluded, kind, fitted, len(unreadable), len(others))
    return summary


__all__ = ["JPEG_QUALITY", "MANIFEST_NAME", "MASKS_DIR", "OcclusionTreeError", "check_kind", "image_tensor",
           "measure_points", "occlude_tree", "save_image", "save_mask", "to_uint8"]
