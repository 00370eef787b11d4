"""On-disk cache of face-mesh points for a dataset of face crops.

The mesh of a training image does not change between epochs, and a horizontal flip mirrors it
(``FaceMesh.flip_points``), so the 468 points of every image are computed once and stored::

    <cache_dir>/<dataset name>-<fingerprint>.safetensors
        points    (N, 468, 2) float16, [0, 1] image coordinates (NaN: no face fitted)
        presence  (N,) float32, the mesh network's face probability

The fingerprint hashes the sample names in order, so a cache is only ever reused for the same
images; a stale or foreign cache is recomputed, never silently misapplied.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from orsanet.fileio import atomic_path
from orsanet.priors.face_mesh import FaceMesh

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def dataset_fingerprint(names: list[str]) -> str:
    """SHA-256 (first 16 hex digits) of the sample names in order."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode("utf-8") + b"\n")
    return digest.hexdigest()[:16]


@torch.no_grad()
def compute_mesh_points(dataset, mesh: FaceMesh | None = None, batch_size: int = 64, refine: int = 1,
                        progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the mesh on every image of ``dataset`` (a FaceDataset of tight face crops).

    Returns points ``(N, 468, 2)`` in [0, 1] image coordinates (NaN rows where no face was
    fitted or the image is unreadable) and presence ``(N,)``.
    """
    mesh = mesh or FaceMesh()
    n = len(dataset)
    points = torch.full((n, 468, 2), float("nan"))
    presence = torch.zeros(n)
    for start in tqdm(range(0, n, batch_size), desc=f"face mesh {dataset.name}", disable=not progress,
                      dynamic_ncols=True):
        indices, images = [], []
        for i in range(start, min(n, start + batch_size)):
            try:
                images.append(np.array(dataset.load_image(i).convert("RGB")))
                indices.append(i)
            except (OSError, ValueError, SyntaxError, EOFError) as error:
                log.warning("%s: unreadable, no prior (%s)", dataset.samples[i][0], error)
        if not images:
            continue
        result = mesh.fit_crops(images, refine=refine)
        sizes = [image.shape[:2] for image in images]
        points[indices] = result.normalized(sizes)[..., :2].cpu().float()
        presence[indices] = result.presence.cpu().float()
    return points, presence


def cache_path(cache_dir: str | Path, dataset) -> Path:
    safe_name = dataset.name.replace("/", "-")
    return Path(cache_dir) / f"{safe_name}-{dataset_fingerprint(dataset.names)}.safetensors"


def load_mesh_cache(path: str | Path, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a cache written by :func:`cached_mesh_points`; refuses one made for other images."""
    path = Path(path)
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("fingerprint") != dataset_fingerprint(names) or int(meta.get("count", -1)) != len(names):
            raise ValueError(f"{path}: prior cache was made for other images ({meta.get('count')} images)")
        return handle.get_tensor("points").float(), handle.get_tensor("presence")


def cached_mesh_points(dataset, cache_dir: str | Path, mesh: FaceMesh | None = None,
                       progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mesh points and presence of every image of ``dataset``, from the cache or computed once."""
    path = cache_path(cache_dir, dataset)
    if path.is_file():
        try:
            return load_mesh_cache(path, dataset.names)
        except (ValueError, OSError) as error:
            log.warning("recomputing prior cache: %s", error)
    log.info("computing face-mesh priors for %d images of %s -> %s", len(dataset), dataset.name, path)
    points, presence = compute_mesh_points(dataset, mesh, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"fingerprint": dataset_fingerprint(dataset.names), "count": str(len(dataset)),
            "dataset": dataset.name, "version": str(CACHE_VERSION),
            "found": json.dumps(int((presence >= 0.5).sum()))}
    with atomic_path(path) as temporary:
        save_file({"points": points.half().contiguous(), "presence": presence.contiguous()}, str(temporary),
                  metadata=meta)
    log.info("%s: face fitted in %d of %d images", path.name, int((presence >= 0.5).sum()), len(dataset))
    return points, presence
