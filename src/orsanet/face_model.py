"""A model file's network with its input contract and prior backend: "priors, then model".

Everything that classifies faces goes through this one object, on face pixels framed by the
contract (``(B, 3, S, S)`` in [0, 1]): training and validation (with cached geometry), ``eval``,
``predict`` and the Python API::

    face = FaceModel.load("default")
    pixels = stack_pixels(crops, face.contract)       # PIL face crops -> (B, 3, S, S)
    logits = face.logits(pixels, flip=True)           # (B, classes)

For a model with a prior backend (``orsanet.priors.face_priors``) the priors are measured on the
same pixels; the paper configuration's prior networks stay inside the model and read the
normalised images themselves.
"""

from __future__ import annotations

import logging
import os

import torch
from torch import nn

from orsanet.contract import InputContract
from orsanet.models import ORSANet
from orsanet.onnx_runtime import CpuFastPath
from orsanet.priors.face_priors import Geometry, PriorBackend, prior_backend

log = logging.getLogger(__name__)


class FaceModel:
    """``ORSANet`` + ``InputContract`` + its ``PriorBackend`` (None for models that extract their own priors).

    Speed options for inference (``logits``): ``amp`` runs the network under bf16 autocast on CUDA
    (fp16 where the GPU has no bf16; ignored on the CPU, which has no fast bf16 here);
    ``channels_last`` feeds it channels-last images; ``compile`` runs it through ``torch.compile``.
    ``runtime``: where the network runs for ``logits`` on the CPU (``orsanet.onnx_runtime``):
    ``pytorch`` (the default: the weights may still change, as in training's validation), or for
    frozen weights ``auto`` (ONNX Runtime where installed, ~1.4x faster at predict's batches here;
    None: ``$ORSANET_RUNTIME``, else ``auto``) or ``onnxruntime``. The PyTorch speed options keep it in PyTorch.
    """

    def __init__(self, model: ORSANet, contract: InputContract | None = None, *, amp: bool = False,
                 channels_last: bool = False, compile: bool = False, runtime: str | None = "pytorch") -> None:
        self.model = model
        self.contract = contract or getattr(model, "contract", None) or InputContract(model.config.input_size)
        self.label_names = list(model.label_names or [])
        device = next(model.parameters()).device
        self.priors: PriorBackend | None = prior_backend(model.prior_backend, device) if model.prior_backend else None
        self.amp, self.channels_last = amp, channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.network = torch.compile(model) if compile else model  # shares the weights with ``model``
        self.fast = CpuFastPath("ORSANet", "pytorch" if amp or channels_last or compile else runtime)
        self._positional: dict[tuple[str, ...], PositionalLogits] = {}

    @classmethod
    def load(cls, path: str | os.PathLike = "default", device: str | torch.device = "cpu", **options) -> "FaceModel":
        """Build, load (``orsanet.load_model``) and wrap a model file; ``options``: ``amp``,
        ``channels_last``, ``compile``, ``runtime``."""
        from orsanet.checkpoint import load_model

        model = load_model(path, device)
        face = cls(model, model.contract, **options)
        trained_with = model.metadata.provenance.get("prior_weights")
        loaded = face.priors.fingerprint() if face.priors is not None and trained_with else None
        if trained_with and loaded != trained_with:
            log.warning("%s was trained with prior weights %s, these are %s (%s): its priors differ from training",
                        path, trained_with, loaded, getattr(face.priors, "weights", "?"))
        return face

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> "FaceModel":
        self.model.to(device)
        if self.priors is not None:
            self.priors.to(device)
        return self

    def measure(self, pixels: torch.Tensor) -> Geometry | None:
        """The backend's geometry of ``pixels (B, 3, S, S)``, or None for a model without a backend."""
        return self.priors.measure(pixels) if self.priors is not None else None

    def inputs(self, pixels: torch.Tensor, geometry: Geometry | None = None,
               hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pixels (+ geometry, measured here when not given; + optional occluder mask ``(B, S, S)``)
        -> (normalised images, raw-prior keyword arguments of ``ORSANet``)."""
        pixels = pixels.to(self.device)
        images = self.contract.normalise(pixels)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.priors is None:
            return images, {}
        geometry = self.measure(pixels) if geometry is None else {k: v.to(self.device) for k, v in geometry.items()}
        return images, self.priors.draw(geometry, hidden)

    @torch.no_grad()
    def logits(self, pixels: torch.Tensor, geometry: Geometry | None = None, flip: bool = False) -> torch.Tensor:
        """``(B, classes)`` logits in eval mode; ``flip`` averages them with the mirrored faces' (test-time
        augmentation: mirrored pixels, and the geometry mirrored rather than measured again)."""
        self.model.eval()
        if self.priors is not None and geometry is None:
            geometry = self.measure(pixels.to(self.device))
        logits = self._run(*self.inputs(pixels, geometry))
        if not flip:
            return logits
        mirrored = self.priors.mirror(geometry) if self.priors is not None else None
        return (logits + self._run(*self.inputs(pixels.flip(-1), mirrored))) / 2

    def _run(self, images: torch.Tensor, priors: dict[str, torch.Tensor]) -> torch.Tensor:
        """The network on prepared inputs -> float logits (under autocast when ``amp`` and on CUDA)."""
        if self.amp and images.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                return self.network(images, **priors).logits.float()
        if self.fast.runtime != "pytorch" and not self.model.training:
            names = tuple(priors)
            if names not in self._positional:
                self._positional[names] = PositionalLogits(self.model, names).eval()
            return self.fast(self._positional[names], images, *priors.values())
        return self.network(images, **priors).logits


class PositionalLogits(nn.Module):
    """``ORSANet`` as ``(images, *priors) -> logits``, the priors in ``names`` order: the form the
    ONNX Runtime stand-in (``orsanet.onnx_runtime.CpuFastPath``) traces."""

    def __init__(self, model: ORSANet, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, images: torch.Tensor, *priors: torch.Tensor) -> torch.Tensor:
        return self.model(images, **dict(zip(self.names, priors))).logits


BACKENDS = ("auto", "pytorch", "onnxruntime")


def load_face_model(path: str | os.PathLike = "default", device: str | torch.device = "cpu", backend: str = "auto",
                    **options):
    """A model file as a ``FaceModel`` (``pytorch``; ``options``: ``amp``, ``channels_last``, ``compile``,
    ``runtime``), or
    an exported ``.onnx`` graph as an ``orsanet.export.OnnxFaceModel`` (``onnxruntime``: the same
    ``logits`` / ``measure`` / ``inputs``, on the CPU); ``auto`` chooses by the file's suffix."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = "onnxruntime" if str(path).endswith(".onnx") else "pytorch"
    if backend == "pytorch":
        return FaceModel.load(path, device, **options)
    from orsanet.export import OnnxFaceModel

    return OnnxFaceModel(path)


def model_metadata(face) -> dict:
    """Labels, config and provenance of a loaded ``FaceModel`` or ``OnnxFaceModel``, as plain data."""
    if isinstance(face, FaceModel):
        metadata = face.model.metadata
        return {"config": metadata.config.to_dict(), "metrics": metadata.metrics, "provenance": metadata.provenance,
                "prior_backend": face.model.prior_backend}
    return {"config": face.metadata.get("config"), "metrics": face.metadata.get("metrics", {}),
            "provenance": face.metadata.get("provenance", {}), "prior_backend": face.prior_backend}
