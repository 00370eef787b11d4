"""On-disk cache of a prior backend's geometry for every face crop of a dataset.

The geometry of a training image (e.g. its 468 mesh points) does not change between epochs, and
flips and warps move it with the pixels (``PriorBackend.mirror`` / ``warp``), so it is measured
once, on exactly the pixels the model is trained on (the input contract's crop), and stored::

    <cache_dir>/<dataset name>-<fingerprint>.safetensors     one tensor per geometry key, (N, ...)

The fingerprint hashes the sample names in order, the backend (name and version) and the input
contract, so a cache is only ever reused for the same images measured the same way; a stale or
foreign cache is recomputed, never silently misapplied.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from orsanet.contract import InputContract
from orsanet.fileio import atomic_path
from orsanet.priors.face_priors import Geometry, PriorBackend

log = logging.getLogger(__name__)
UNREADABLE = (OSError, ValueError, SyntaxError, EOFError)


def cache_fingerprint(names: list[str], backend: PriorBackend, contract: InputContract) -> str:
    """SHA-256 (first 16 hex digits) of the sample names in order, the backend and the contract."""
    digest = hashlib.sha256()
    digest.update(json.dumps([backend.name, backend.version, contract.to_dict()], sort_keys=True).encode() + b"\n")
    for name in names:
        digest.update(name.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()[:16]


@torch.no_grad()
def measure_dataset(dataset, backend: PriorBackend, contract: InputContract, batch_size: int = 64,
                    progress: bool = True) -> Geometry:
    """``backend.measure`` on the contract's crop of every image of ``dataset`` (a FaceDataset of face
    crops); unreadable images get the backend's empty geometry."""
    parts: dict[int, Geometry] = {}
    n = len(dataset.samples)
    for start in tqdm(range(0, n, batch_size), desc=f"{backend.name} priors {dataset.name}", disable=not progress,
                      dynamic_ncols=True):
        indices, pixels = [], []
        for i in range(start, min(n, start + batch_size)):
            try:
                pixels.append(contract.pixels(dataset.load_image(i)))
                indices.append(i)
            except UNREADABLE as error:
                log.warning("%s: unreadable, no prior (%s)", dataset.samples[i][0], error)
        chunk = backend.empty(min(n, start + batch_size) - start)
        if pixels:
            measured = backend.measure(torch.stack(pixels))
            rows = torch.tensor(indices) - start
            for key in chunk:
                chunk[key][rows] = measured[key].cpu().to(chunk[key].dtype)
        parts[start] = chunk
    return {key: torch.cat([parts[s][key] for s in sorted(parts)]) for key in backend.empty(1)}


def cache_path(cache_dir: str | Path, dataset, backend: PriorBackend, contract: InputContract) -> Path:
    safe_name = dataset.name.replace("/", "-")
    return Path(cache_dir) / f"{safe_name}-{cache_fingerprint(dataset.names, backend, contract)}.safetensors"


def load_cache(path: str | Path, fingerprint: str, count: int) -> Geometry:
    """Read a cache written by :func:`cached_geometry`; refuses one made for other images or settings."""
    path = Path(path)
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
        if meta.get("fingerprint") != fingerprint or int(meta.get("count", -1)) != count:
            raise ValueError(f"{path}: prior cache was made for other images or settings ({meta.get('count')} images)")
        return {key: handle.get_tensor(key) for key in handle.keys()}


def cached_geometry(dataset, backend: PriorBackend, contract: InputContract, cache_dir: str | Path,
                    progress: bool = True) -> Geometry:
    """The backend's geometry of every image of ``dataset``, from the cache or measured once."""
    path = cache_path(cache_dir, dataset, backend, contract)
    fingerprint = cache_fingerprint(dataset.names, backend, contract)
    if path.is_file():
        try:
            return load_cache(path, fingerprint, len(dataset.names))
        except (ValueError, OSError) as error:
            log.warning("recomputing prior cache: %s", error)
    log.info("measuring %s priors for %d images of %s -> %s", backend.name, len(dataset.names), dataset.name, path)
    geometry = measure_dataset(dataset, backend, contract, progress=progress)
    found = int(backend.valid(geometry).sum())
    meta = {"fingerprint": fingerprint, "count": str(len(dataset.names)), "dataset": dataset.name,
            "backend": f"{backend.name} v{backend.version}", "found": str(found)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        save_file({key: value.contiguous() for key, value in geometry.items()}, str(temporary), metadata=meta)
    log.info("%s: prior measured on %d of %d images", path.name, found, len(dataset.names))
    return geometry
