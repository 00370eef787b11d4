"""The one prior path: face crops framed by the input contract -> the raw priors a model reads.

Training (through its on-disk cache), validation, ``orsanet eval``, ``orsanet predict`` and the
Python API all call a backend the same way, on the same tensor: the face crop as the input
contract makes it, ``pixels (B, 3, S, S)`` in [0, 1], before normalisation. A backend works in
two steps, so that the expensive one can be cached and augmented::

    geometry = backend.measure(pixels)        # e.g. the 468 mesh points of every face: cacheable
    raw = backend.draw(geometry, hidden)      # {"landmark_prior": ..., "parsing_prior": ...} for ORSANet

``mirror`` and ``warp`` move a geometry with the pixels (flip augmentation and test-time flip,
rotation/scale/shift augmentation); ``hidden (B, S, S)`` bool marks pixels an occluder covers.

Adding a backend: write one ``PriorBackend`` subclass and add it to ``PRIOR_BACKENDS``; the model
sources that read it name it in ``orsanet.models.priors.SOURCE_BACKENDS``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from orsanet.priors.face_mesh import NUM_POINTS
from orsanet.priors.parsing_map import parsing_map

PRIOR_SIZE = 28  # side of the parsing maps the mesh backend draws

Geometry = dict[str, torch.Tensor]


class PriorBackend:
    """Face crops -> geometry (cacheable) -> raw priors. Subclasses set ``name`` and ``version``
    (bump it when ``measure`` changes, so caches made by the old code are not reused)."""

    name = "base"
    version = 1
    live = False  # True: measured on the augmented pixels in every training step instead of cached

    def measure(self, pixels: torch.Tensor) -> Geometry:
        """``(B, 3, S, S)`` pixels in [0, 1] -> per-face tensors, each with a leading ``B`` axis."""
        raise NotImplementedError

    def draw(self, geometry: Geometry, hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Geometry (+ optional ``(B, S, S)`` occluder mask) -> raw priors, keyword arguments of ``ORSANet``."""
        raise NotImplementedError

    def valid(self, geometry: Geometry) -> torch.Tensor:
        """``(B,)`` bool: whether the prior could be measured on each face."""
        raise NotImplementedError

    def empty(self, batch: int, device: torch.device | str = "cpu") -> Geometry:
        """The geometry of ``batch`` faces on which nothing could be measured."""
        raise NotImplementedError

    def face_score(self, geometry: Geometry) -> torch.Tensor:
        """``(B,)`` in [0, 1]: how sure the backend is that each crop shows a face."""
        raise NotImplementedError

    def points(self, geometry: Geometry) -> torch.Tensor | None:
        """``(B, N, 2)`` landmark points in [0, 1] crop coordinates for pictures (NaN where unknown), or None."""
        return None

    def mirror(self, geometry: Geometry) -> Geometry:
        """The geometry of the horizontally mirrored crops."""
        raise NotImplementedError

    def warp(self, geometry: Geometry, matrix: torch.Tensor, shift: torch.Tensor) -> Geometry:
        """The geometry after the affine warp in which output pixel ``u`` (coordinates in [-1, 1])
        samples input ``matrix @ u + shift``; ``matrix (B, 2, 2)``, ``shift (B, 2)``."""
        raise NotImplementedError

    def select(self, geometry: Geometry, chosen: torch.Tensor, other: Geometry) -> Geometry:
        """Per face, ``geometry`` where ``chosen (B,)`` is True, else ``other``."""
        return {key: torch.where(chosen.view(-1, *[1] * (value.dim() - 1)), value, other[key])
                for key, value in geometry.items()}

    def fingerprint(self) -> str | None:
        """What identifies the backend's weights when they can change (a trained network), else None."""
        return None

    def __call__(self, pixels: torch.Tensor, hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.draw(self.measure(pixels), hidden)


@functools.cache
def mesh_flip_permutation() -> torch.Tensor:
    """``(468,)``: index of the mesh point that mirrors each point (from the shipped mesh weights)."""
    from orsanet.priors.face_mesh import FaceMesh

    with torch.random.fork_rng(devices=[]):  # building the network draws initial weights: leave the global RNG alone
        return FaceMesh(batch_size=1).flip_permutation.clone()


class MeshPriors(PriorBackend):
    """MediaPipe's 468-point face mesh fitted on the crop (the crop enlarged 1.5x, then one re-crop
    from the first fit), drawn as ORSANet's raw priors:

    - geometry: ``points (B, 468, 2)`` in [0, 1] crop coordinates (NaN where no face was fitted),
      ``presence (B,)`` the mesh network's face probability;
    - ``landmark_prior (B, 468, 3)``: ``x, y`` and a weight (0 for points an occluder hides, and for
      every point of a face without a fit);
    - ``parsing_prior (B, 11, 28, 28)``: the soft LaPa-layout map drawn from the mesh (all background
      without a fit, all zeros where an occluder covers half a cell or more).

    Where an occluder is known, the mesh would describe a face that is not visible (it invents a
    closed, neutral mouth), so both priors are blanked under it.
    """

    name = "mesh"
    version = 2  # 2: fitted on the contract's crop (S x S pixels), refine 1

    def __init__(self, device: torch.device | str = "cpu", refine: int = 1, presence_threshold: float = 0.5,
                 size: int = PRIOR_SIZE, runtime: str | None = None) -> None:
        """``runtime``: where the mesh network runs on the CPU (``orsanet.onnx_runtime``; None: ``auto``
        unless ``$ORSANET_RUNTIME`` says otherwise)."""
        self.device, self.refine, self.threshold, self.size = torch.device(device), refine, presence_threshold, size
        self.runtime = runtime
        self._mesh = None

    @property
    def mesh(self):
        """The face-mesh network, built on first use (its weights ship with the package). Building it
        leaves the global random generator as it was, so a run that measures its priors and one that
        reads them from the cache train alike."""
        if self._mesh is None:
            from orsanet.priors.face_mesh import FaceMesh

            with torch.random.fork_rng(devices=[]):
                self._mesh = FaceMesh(runtime=self.runtime).to(self.device)
        return self._mesh

    def to(self, device: torch.device | str) -> "MeshPriors":
        self.device = torch.device(device)
        if self._mesh is not None:
            self._mesh.to(self.device)
        return self

    @torch.no_grad()
    def measure(self, pixels: torch.Tensor) -> Geometry:
        size = pixels.shape[-2:]
        crops = (pixels.float().clamp(0, 1) * 255).round().permute(0, 2, 3, 1).to(self.device)  # (B, S, S, 3)
        fit = self.mesh.fit_crops(list(crops), refine=self.refine)
        points = fit.normalized([tuple(size)] * len(pixels))[..., :2]
        points = torch.where(fit.found(self.threshold).view(-1, 1, 1), points, torch.full_like(points, float("nan")))
        return {"points": points.to(pixels.device), "presence": fit.presence.to(pixels.device)}

    def valid(self, geometry: Geometry) -> torch.Tensor:
        return (geometry["presence"] >= self.threshold) & ~geometry["points"].isnan().flatten(1).any(1)

    def face_score(self, geometry: Geometry) -> torch.Tensor:
        return geometry["presence"]

    def points(self, geometry: Geometry) -> torch.Tensor:
        return geometry["points"]

    def empty(self, batch: int, device: torch.device | str = "cpu") -> Geometry:
        return {"points": torch.full((batch, NUM_POINTS, 2), float("nan"), device=device),
                "presence": torch.zeros(batch, device=device)}

    def draw(self, geometry: Geometry, hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        points, valid = geometry["points"].float(), self.valid(geometry)
        clean = torch.where(valid.view(-1, 1, 1), points, torch.zeros_like(points))
        weight = valid.view(-1, 1).float().expand(-1, points.shape[1]).clone()
        raster = 4 * self.size
        parsing = parsing_map(torch.where(valid.view(-1, 1, 1), points, torch.full_like(points, float("nan"))) * raster,
                              (raster, raster), size=self.size, raster=raster)
        if hidden is not None:
            hidden = hidden.to(points.device).bool()
            height, width = hidden.shape[-2:]
            ix = (clean[..., 0] * width).long().clamp(0, width - 1)
            iy = (clean[..., 1] * height).long().clamp(0, height - 1)
            weight = weight * ~hidden.flatten(1).gather(1, iy * width + ix)
            covered = F.adaptive_avg_pool2d(hidden.float().unsqueeze(1), self.size) >= 0.5  # (B, 1, size, size)
            parsing = parsing * ~covered
        return {"landmark_prior": torch.cat([clean, weight.unsqueeze(-1)], -1), "parsing_prior": parsing}

    def mirror(self, geometry: Geometry) -> Geometry:
        points = geometry["points"][:, mesh_flip_permutation().to(geometry["points"].device)].clone()
        points[..., 0] = 1 - points[..., 0]
        return {**geometry, "points": points}

    def warp(self, geometry: Geometry, matrix: torch.Tensor, shift: torch.Tensor) -> Geometry:
        centred = geometry["points"].float() * 2 - 1 - shift.unsqueeze(1)  # (B, 468, 2) in [-1, 1]
        moved = torch.linalg.solve(matrix, centred.transpose(1, 2)).transpose(1, 2)
        return {**geometry, "points": (moved + 1) / 2}


def _occlusion_net(device: torch.device | str = "cpu") -> PriorBackend:
    from orsanet.priors.occlusion_net import OcclusionNetPriors

    return OcclusionNetPriors(device=device)


PRIOR_BACKENDS = {"mesh": MeshPriors, "occlusion_net": _occlusion_net}


def prior_backend(name: str, device: torch.device | str = "cpu") -> PriorBackend:
    """A new backend by name (see ``PRIOR_BACKENDS``)."""
    try:
        return PRIOR_BACKENDS[name](device=device)
    except KeyError:
        raise ValueError(f"unknown prior backend {name!r} (known: {', '.join(PRIOR_BACKENDS)})") from None
