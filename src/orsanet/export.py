"""Export a model file to ONNX, and run the exported graphs with ONNX Runtime.

    from orsanet.export import export_onnx, OnnxFaceModel

    export_onnx("default", "model.onnx", int8=True)   # model.onnx, model.mesh.onnx, model.int8.onnx
    face = OnnxFaceModel("model.onnx")                 # same interface as orsanet.FaceModel
    logits = face.logits(pixels, flip=True)            # pixels (B, 3, S, S) in [0, 1], framed by face.contract

Files written by ``export_onnx(model, "out.onnx")``:

- ``out.onnx``, the classifier. For a model with a prior backend it takes ``images (B, 3, S, S)``
  (normalised by the input contract) and the backend's raw priors, ``landmark_prior`` and
  ``parsing_prior``: for a mesh-prior model ``(B, 468, 3)`` and ``(B, 11, 28, 28)``
  (``orsanet.priors.face_priors.MeshPriors``), for the default (the occlusion-aware prior network)
  the shapes below; it returns ``logits (B, C)``. For the paper configuration, whose prior networks
  (MobileFaceNet, Swin-B parser) live inside the model, it takes ``images (B, 3, S, S)`` only.
- ``out.mesh.onnx`` (models with the mesh backend only): the 468-point face-mesh network,
  ``crops (B, 3, 192, 192)`` RGB in [0, 1] -> ``points (B, 468, 3)`` in 192-px crop units and
  ``presence_logits (B,)``.
- ``out.priors.onnx`` (models with the occlusion-aware prior network,
  ``orsanet.priors.occlusion_net``): ``pixels (B, 3, S, S)`` in [0, 1] -> the network's
  ``parsing``, ``heatmaps``, ``visibility`` and ``face`` logits; the classifier then takes
  ``landmark_prior (B, 16, 28, 28)`` and ``parsing_prior (B, 12, 28, 28)`` (``OcclusionNetPriors.draw``).
- ``out.int8.onnx`` (``int8=True``): the classifier quantised to int8 by ONNX Runtime's static
  quantisation (QDQ: int8 per-channel weights, uint8 activations whose ranges, min-max or
  99.999th percentiles, are calibrated on real faces of a dataset's validation split with
  ``calibration_data=`` (``dataset_faces``), else on generated cartoon faces, ``generated_faces``;
  ``quantize_int8(..., calibration=crops)`` takes any face crops). The image backbone's stem and
  first stage (its layers at least half the input wide) stay float. It reads the float
  ``out.mesh.onnx`` or ``out.priors.onnx`` (the priors stay float).
  Dynamic quantisation was measured too and is not used: with its ``ConvInteger`` kernels the
  (convolutional) default model ran 5x slower than float on the CPU.

Every graph carries its metadata as ONNX ``metadata_props``, each value a JSON string (read them
with ``read_onnx_metadata`` or ``onnxruntime``'s ``session.get_modelmeta().custom_metadata_map``):
``label_names``, ``preprocessing`` (the input contract, ``orsanet.contract.InputContract``),
``config`` (``ORSANetConfig``), ``prior_backend``, ``inputs`` / ``outputs`` (names, shapes with
``"batch"`` for the batch axis, dtypes, meaning), ``orsanet_version``, ``mesh_graph`` (file name of
the mesh graph, next to this one), ``quantization``, ``metrics``, ``provenance``. The mesh graph
has ``flip_permutation`` (the index of the mirror point of every mesh point) and ``prior``
(how the priors are measured and drawn).

What stays in Python: the graphs are the networks only. Framing a face in a photo, the mesh's
rotated crops, the projection of its points back to the face crop, its re-crop pass, and drawing
the raw priors from the points (part heatmaps are inside the classifier graph; the parsing map
and the prior weights are drawn by ``MeshPriors.draw``) are the existing orsanet code, which
uses PyTorch tensors. ``OnnxFaceModel`` therefore needs ONNX Runtime *and* PyTorch: both
networks run in ONNX Runtime, the crop / projection / drawing in orsanet's own (PyTorch) code,
exactly as ``FaceModel`` does it. A runtime without PyTorch needs a port of
``FaceMesh.fit_crops`` (a rotated bilinear crop, e.g. ``cv2.warpAffine``) and of
``MeshPriors.draw`` (``orsanet.priors.parsing_map``), or priors measured elsewhere.

``part_heatmaps`` (the landmark prior's splatting, with ``scatter_add``) exports as ONNX
``ScatterElements`` (reduction ``add``, opset >= 16) and matches PyTorch exactly, so no rewrite
was needed.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from orsanet.contract import InputContract
from orsanet.priors.face_priors import PRIOR_SIZE, Geometry, MeshPriors
from orsanet.priors.occlusion_net import NUM_CLASSES as NET_CLASSES
from orsanet.priors.occlusion_net import NUM_PARTS, OcclusionNetPriors

EXPORT_FORMAT = "orsanet-onnx"
EXPORT_FORMAT_VERSION = 1
MIN_OPSET = 16  # ScatterElements with reduction="add" (part_heatmaps)
CALIBRATION_FACES = 32  # generated faces that calibrate the int8 graph's activation ranges
FLOAT_FRACTION = 0.5  # int8: image-backbone layers at least this fraction of the input wide stay float
BACKBONE_SCOPE = "image_backbone"  # ORSANet's attribute, hence the scope of its nodes' ONNX names
EXPORT_BATCH = 2  # trace with more than one face, so that no axis of size 1 is mistaken for a broadcast


class ExportError(RuntimeError):
    """A model that could not be exported, or an exported file that cannot be used."""


def mesh_graph_path(path: str | os.PathLike) -> Path:
    """``out.onnx`` -> ``out.mesh.onnx``: where ``export_onnx`` writes the face-mesh graph."""
    path = Path(path)
    return path.with_name(f"{path.stem}.mesh.onnx")


def prior_graph_path(path: str | os.PathLike) -> Path:
    """``out.onnx`` -> ``out.priors.onnx``: where ``export_onnx`` writes the occlusion-aware prior network."""
    path = Path(path)
    return path.with_name(f"{path.stem}.priors.onnx")


def int8_graph_path(path: str | os.PathLike) -> Path:
    """``out.onnx`` -> ``out.int8.onnx``: where ``export_onnx(..., int8=True)`` writes the quantised graph."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8.onnx")


# ---------------------------------------------------------------------------------------- export
class _Classifier(nn.Module):
    """``ORSANet`` with a plain-tensor output: (images[, landmark_prior, parsing_prior]) -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = _without_spectral_norm(model)

    def forward(self, images: torch.Tensor, landmark_prior: torch.Tensor | None = None,
                parsing_prior: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(images, landmark_prior, parsing_prior).logits


def _without_spectral_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) whose spectrally normalised convs (SSGM) hold their normalised
    weight as a plain parameter: the same eval-mode output, but a constant the exporter folds and the
    quantiser can read (with the hook the graph divides by the spectral norm at run time)."""
    import copy

    from torch.nn.utils import remove_spectral_norm
    from torch.nn.utils.spectral_norm import SpectralNorm

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        for hook in [h for h in module._forward_pre_hooks.values() if isinstance(h, SpectralNorm)]:
            remove_spectral_norm(module, hook.name)
    return model


def _io(name: str, shape, meaning: str, dtype: str = "float32") -> dict:
    return {"name": name, "shape": list(shape), "dtype": dtype, "meaning": meaning}


def _torch_export(module: nn.Module, args: tuple, path: Path, inputs: list[dict], outputs: list[dict],
                  opset: int, dynamic_batch: bool) -> str:
    """``torch.onnx.export``: the TorchScript exporter (``dynamo=False``) first, then torch.export's
    (``dynamo=True``) where the former is missing or fails. Returns the exporter used."""
    names, out_names = [i["name"] for i in inputs], [o["name"] for o in outputs]
    try:
        _torchscript_export(module, args, path, names, out_names, opset, dynamic_batch)
        return "torchscript"
    except Exception as legacy_error:  # noqa: BLE001 - fall back to the other exporter, report both
        try:
            _dynamo_export(module, args, path, names, out_names, opset, dynamic_batch)
            return "dynamo"
        except Exception as dynamo_error:  # noqa: BLE001
            raise ExportError(f"{path}: torch.onnx.export failed with dynamo=False ({legacy_error}) "
                              f"and with dynamo=True ({dynamo_error})") from dynamo_error


def _torchscript_export(module: nn.Module, args: tuple, path: Path, names: list[str], out_names: list[str],
                        opset: int, dynamic_batch: bool) -> None:
    module.eval()  # export restores the wrapper's mode afterwards, which would leave the model in training mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "legacy TorchScript-based ONNX export"
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # InstanceNorm2d(track_running_stats=False) always normalises with the input's statistics
        warnings.filterwarnings("ignore", message=".*instance_norm.*train=True")
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")  # flips: left as Slice
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                          input_names=names, output_names=out_names, do_constant_folding=True,
                          dynamic_axes={n: {0: "batch"} for n in names + out_names} if dynamic_batch else None)


def _dynamo_export(module: nn.Module, args: tuple, path: Path, names: list[str], out_names: list[str],
                   opset: int, dynamic_batch: bool) -> None:
    module.eval()
    batch = torch.export.Dim("batch", min=1)
    shapes = tuple({0: batch} for _ in args) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "The axis name: batch will not be used, since it shares ..."
        program = torch.onnx.export(module, args, dynamo=True, opset_version=opset, input_names=names,
                                    output_names=out_names, dynamic_shapes=shapes, optimize=True, verbose=False)
    program.save(str(path))


def _set_metadata(path: Path, values: dict) -> None:
    """Write ``values`` (each as JSON) into the ``metadata_props`` of the ONNX file at ``path``."""
    import onnx

    graph = onnx.load(str(path))
    values = {**values, "opset": next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")),
                                      values.get("opset"))}  # the dynamo exporter may keep a newer one
    onnx.helper.set_model_props(graph, {key: json.dumps(value, sort_keys=True) for key, value in values.items()})
    graph.producer_name, graph.doc_string = "orsanet", values.get("description", "")
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata_props`` of an exported graph, each JSON value decoded (needs only onnxruntime)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ExportError(f"{path}: not a readable ONNX file ({error})") from None
    return _decode(session.get_modelmeta().custom_metadata_map, path)


def _decode(raw: dict[str, str], path) -> dict:
    values = {}
    for key, text in raw.items():
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    if values.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{path}: not an orsanet ONNX export (no format={EXPORT_FORMAT!r} in its metadata)")
    return values


def export_onnx(model_path: str | os.PathLike, out_path: str | os.PathLike, *, opset: int = 17,
                dynamic_batch: bool = True, int8: bool = False, calibration_data: str | os.PathLike | None = None,
                calibration_count: int = 512, calibration_method: str = "minmax") -> Path:
    """Export a model file (``"default"`` for the packaged model) to ONNX at ``out_path``; returns ``out_path``.

    Writes ``out_path`` (the classifier), for a mesh-prior model also ``mesh_graph_path(out_path)``
    (the face-mesh network), and with ``int8`` also ``int8_graph_path(out_path)``, calibrated on
    ``calibration_count`` faces of the dataset at ``calibration_data`` (its validation split) when given,
    else on generated faces (see the module docstring for their inputs, outputs and metadata).
    ``dynamic_batch``: the batch axis of every graph is free (else the graphs take one face at a time)."""
    import orsanet
    from orsanet.checkpoint import load_model, resolve_model_path

    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: the mesh priors' scatter-add needs opset {MIN_OPSET} or newer")
    source = resolve_model_path(model_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        model = load_model(source, "cpu")
    config, contract = model.config, model.contract
    size, batch = contract.input_size, EXPORT_BATCH if dynamic_batch else 1
    dim = "batch" if dynamic_batch else 1
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator)
    backend = model.prior_backend
    inputs = [_io("images", (dim, 3, size, size), f"face crops framed by the input contract, pixels in [0, 1] "
                  f"normalised with its mean and std ({contract.color}, {size} px)")]
    if backend is None:
        args: tuple = (images,)
    elif backend == "mesh":
        landmark = torch.cat([torch.rand(batch, 468, 2, generator=generator), torch.ones(batch, 468, 1)], -1)
        parsing = torch.rand(batch, 11, PRIOR_SIZE, PRIOR_SIZE, generator=generator)
        args = (images, landmark, parsing / parsing.sum(1, keepdim=True))
        inputs += [_io("landmark_prior", (dim, 468, 3), "mesh points x, y in [0, 1] crop coordinates and a weight "
                       "(MeshPriors.draw)"),
                   _io("parsing_prior", (dim, 11, PRIOR_SIZE, PRIOR_SIZE), "soft LaPa-layout parsing map drawn from "
                       "the mesh (MeshPriors.draw)")]
    elif backend == OcclusionNetPriors.name:
        geometry = OcclusionNetPriors().empty(batch)
        geometry["heatmaps"] = torch.rand(batch, NUM_PARTS, PRIOR_SIZE, PRIOR_SIZE, generator=generator)
        geometry["visibility"] = torch.rand(batch, NUM_PARTS, generator=generator)
        raw = OcclusionNetPriors().draw(geometry)
        args = (images, raw["landmark_prior"], raw["parsing_prior"])
        inputs += [_io("landmark_prior", (dim, 2 * NUM_PARTS, PRIOR_SIZE, PRIOR_SIZE), "part heatmaps, then the "
                       "same weighted by each part's visibility (OcclusionNetPriors.draw)"),
                   _io("parsing_prior", (dim, NET_CLASSES, PRIOR_SIZE, PRIOR_SIZE), "12-class parsing probabilities "
                       "(11 LaPa classes + occluded) of the prior network (OcclusionNetPriors.draw)")]
    else:
        raise ExportError(f"{source}: prior backend {backend!r} has no ONNX export")
    outputs = [_io("logits", (dim, config.num_classes), "class logits, in label_names order")]
    exporter = _torch_export(_Classifier(model), args, out_path, inputs, outputs, opset, dynamic_batch)
    metadata = model.metadata
    values = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "orsanet_version": orsanet.__version__,
              "torch_version": torch.__version__, "exporter": exporter, "opset": opset,
              "label_names": list(model.label_names), "preprocessing": contract.to_dict(),
              "config": config.to_dict(), "prior_backend": backend, "inputs": inputs, "outputs": outputs,
              "dynamic_batch": dynamic_batch, "source": source.name, "metrics": metadata.metrics,
              "provenance": metadata.provenance, "quantization": None,
              "mesh_graph": mesh_graph_path(out_path).name if backend == "mesh" else None,
              "prior_graph": prior_graph_path(out_path).name if backend == OcclusionNetPriors.name else None,
              "description": f"orsanet {config.image_backbone} classifier, {config.num_classes} classes, {size} px"}
    _set_metadata(out_path, values)
    if backend == "mesh":
        export_mesh(mesh_graph_path(out_path), opset=opset, dynamic_batch=dynamic_batch, classifier=out_path.name)
    if backend == OcclusionNetPriors.name:
        export_prior_net(prior_graph_path(out_path), size, opset=opset, dynamic_batch=dynamic_batch,
                         classifier=out_path.name)
    if int8:
        pixels = source_line = None
        if calibration_data is not None:
            pixels, source_line = dataset_faces(calibration_data, contract, calibration_count)
        quantize_int8(out_path, calibration=pixels, source=source_line, method=calibration_method)
    return out_path


def export_mesh(out_path: str | os.PathLike, *, opset: int = 17, dynamic_batch: bool = True,
                classifier: str | None = None) -> Path:
    """Export the shipped 468-point face-mesh network (``FaceMeshNet``) to ``out_path`` (``classifier``:
    the file name of the classifier graph that reads it, recorded in the metadata)."""
    import orsanet
    from orsanet.priors.face_mesh import INPUT_SIZE, NUM_POINTS, FaceMesh

    out_path = Path(out_path)
    with torch.random.fork_rng(devices=[]):
        mesh = FaceMesh()
    dim = "batch" if dynamic_batch else 1
    crops = torch.rand(EXPORT_BATCH if dynamic_batch else 1, 3, INPUT_SIZE, INPUT_SIZE,
                       generator=torch.Generator().manual_seed(0))
    inputs = [_io("crops", (dim, 3, INPUT_SIZE, INPUT_SIZE), "rotated square face crops (FaceMesh.fit_crops), "
                  "RGB in [0, 1]")]
    outputs = [_io("points", (dim, NUM_POINTS, 3), "mesh points x, y, z in 192-px crop units"),
               _io("presence_logits", (dim,), "face-presence logit (sigmoid: probability)")]
    exporter = _torch_export(mesh.net, (crops,), out_path, inputs, outputs, opset, dynamic_batch)
    backend = MeshPriors()
    values = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "orsanet_version": orsanet.__version__,
              "torch_version": torch.__version__, "exporter": exporter, "opset": opset, "role": "face_mesh",
              "inputs": inputs, "outputs": outputs, "dynamic_batch": dynamic_batch,
              "flip_permutation": mesh.flip_permutation.tolist(),
              "prior": {"backend": MeshPriors.name, "version": MeshPriors.version, "refine": backend.refine,
                        "presence_threshold": backend.threshold, "prior_size": backend.size,
                        "padding_mode": mesh.padding_mode},
              "description": "MediaPipe 468-point face mesh (orsanet.priors.face_mesh.FaceMeshNet)"}
    if classifier is not None:
        values["classifier_graph"] = classifier
    _set_metadata(out_path, values)
    return out_path


def export_prior_net(out_path: str | os.PathLike, size: int, *, opset: int = 17, dynamic_batch: bool = True,
                     classifier: str | None = None) -> Path:
    """Export the occlusion-aware prior network (the weights ``OcclusionNetPriors`` loads) to ``out_path``,
    for ``size``-px contract crops."""
    import orsanet

    out_path = Path(out_path)
    backend = OcclusionNetPriors()
    dim = "batch" if dynamic_batch else 1
    pixels = torch.rand(EXPORT_BATCH if dynamic_batch else 1, 3, size, size, generator=torch.Generator().manual_seed(0))
    inputs = [_io("pixels", (dim, 3, size, size), "face crops framed by the input contract, pixels in [0, 1]")]
    outputs = [_io("parsing", (dim, NET_CLASSES, PRIOR_SIZE, PRIOR_SIZE), "12-class logits (softmax over axis 1)"),
               _io("heatmaps", (dim, NUM_PARTS, PRIOR_SIZE, PRIOR_SIZE), "part heatmap logits (sigmoid)"),
               _io("visibility", (dim, NUM_PARTS), "per-part visibility logits (sigmoid)"),
               _io("face", (dim,), "face logit (sigmoid)")]

    class Outputs(nn.Module):
        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor):
            out = self.net(x)
            return out["parsing"], out["heatmaps"], out["visibility"], out["face"]

    exporter = _torch_export(Outputs(backend.net), (pixels,), out_path, inputs, outputs, opset, dynamic_batch)
    values = {"format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "orsanet_version": orsanet.__version__,
              "torch_version": torch.__version__, "exporter": exporter, "opset": opset, "role": "prior_net",
              "inputs": inputs, "outputs": outputs, "dynamic_batch": dynamic_batch,
              "prior": {"backend": OcclusionNetPriors.name, "version": OcclusionNetPriors.version,
                        "weights": backend.weights.name},
              "description": "occlusion-aware prior network (orsanet.priors.occlusion_net.OcclusionPriorNet)"}
    if classifier is not None:
        values["classifier_graph"] = classifier
    _set_metadata(out_path, values)
    return out_path


def _remove_with_external_data(path: Path) -> None:
    """Delete an ONNX file and the external-data files its tensors point to (next to it)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for location in {entry.value for tensor in graph.initializer for entry in tensor.external_data
                     if entry.key == "location"}:
        (path.parent / location).unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def dataset_faces(data_root: str | os.PathLike, contract: InputContract, count: int = 512, split: str | None = "valid",
                  seed: int = 0) -> tuple[torch.Tensor, str]:
    """``count`` faces drawn at random (seeded) from a dataset split, as the contract frames them:
    pixels ``(N, 3, S, S)`` in [0, 1], and a line saying where they come from (for the metadata)."""
    from orsanet.data import open_dataset
    from orsanet.engine.evaluate import resolve_split

    kind, split = resolve_split("auto", Path(data_root), split)
    dataset = open_dataset(kind, data_root, split, transform=contract.pixels)
    dataset.scan_images()
    picked = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    pixels = torch.stack([dataset[i][0] for i in picked])
    return pixels, f"{len(picked)} faces of {kind}/{split or '.'} ({data_root}), seed {seed}"


def quantize_int8(float_path: str | os.PathLike, out_path: str | os.PathLike | None = None, *,
                  calibration: torch.Tensor | None = None, count: int = CALIBRATION_FACES,
                  source: str | None = None, method: str = "minmax", op_types: list[str] | None = None,
                  float_fraction: float | None = FLOAT_FRACTION) -> Path:
    """Static int8 quantisation (onnxruntime.quantization, QDQ format: int8 per-channel weights,
    uint8 activations) of an exported classifier graph, written to ``int8_graph_path(float_path)``
    unless ``out_path`` is given. Activation ranges are calibrated on ``calibration``
    face pixels ``(N, 3, S, S)`` in [0, 1] when given (their priors measured with the model's backend;
    ``source`` says where they come from), else on ``count`` generated cartoon faces (``generated_faces``).
    ``method``: ``minmax`` (the default) or ``percentile`` (99.999 %) activation ranges.
    ``float_fraction``: the image backbone's operations whose output is at least this fraction of the
    input's width (the stem and first stage: ``high_resolution_nodes``) stay float; None quantises
    them too. ``op_types``: the operator types to quantise (default: all that ONNX Runtime can).
    Measured on FERPlus test, calibrated on 512 FERPlus Valid faces, top-1 agreement with the float
    graph (``scripts/measure_int8.py``): the default model 99.52 % (everything quantised: 99.23 %
    with ``minmax``, 99.39 % with ``percentile``). The metadata is carried over (``quantization``
    says how; ``mesh_graph`` still names the float mesh graph)."""
    import logging
    import tempfile

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    float_path = Path(float_path)
    out_path = Path(out_path) if out_path is not None else int8_graph_path(float_path)
    values = read_onnx_metadata(float_path)
    contract = InputContract.from_dict(values["preprocessing"])
    backend = values.get("prior_backend")
    if calibration is None:
        pixels, geometry, hidden = generated_faces(contract, count)
        source = f"{count} generated faces (orsanet.export.generated_faces)"
    else:
        pixels, hidden = torch.as_tensor(calibration).float(), None
        geometry = MeshPriors().measure(pixels) if backend == "mesh" else None
        source = source or f"{len(pixels)} given face crops"
    feeds = {"images": contract.normalise(pixels)}
    if backend == "mesh":
        feeds.update(MeshPriors().draw(geometry, hidden))
    elif backend == OcclusionNetPriors.name:
        priors = OcclusionNetPriors()
        feeds.update(priors.draw(priors.measure(pixels)))
    batch = 8 if values.get("dynamic_batch", True) else 1
    chunks = [{name: value[i:i + batch].contiguous().numpy() for name, value in feeds.items()}
              for i in range(0, len(pixels), batch)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(chunks)

        def get_next(self):
            return next(self.batches, None)

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantiser logs advice through the root logger
        try:
            prepared = Path(scratch) / "prepared.onnx"
            dump = Path.cwd() / "sym_shape_infer_temp.onnx"  # where shape inference leaves a graph it gives up on
            dumped_before = dump.exists()
            try:
                quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=False)
            except Exception:  # noqa: BLE001 -- symbolic shape inference gives up on some graphs (Swin-B)
                if dump.exists() and not dumped_before:
                    _remove_with_external_data(dump)
                quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
            kept_float = ([] if float_fraction is None
                          else high_resolution_nodes(prepared, chunks[0], contract.input_size * float_fraction))
            quantize_static(str(prepared), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            calibrate_method={"minmax": CalibrationMethod.MinMax,
                                              "percentile": CalibrationMethod.Percentile}[method],
                            op_types_to_quantize=op_types, nodes_to_exclude=kept_float)
        finally:
            root.setLevel(level)
    values["quantization"] = {"method": f"onnxruntime.quantization.quantize_static (QDQ, {method} calibration)",
                              "op_types": op_types or "all",
                              "float_nodes": kept_float,
                              "weights": "int8, per channel", "activations": "uint8, per tensor",
                              "calibration": source, "float_graph": float_path.name}
    _set_metadata(out_path, values)
    return out_path


def high_resolution_nodes(graph_path: str | os.PathLike, feeds: dict[str, np.ndarray], width: float) -> list[str]:
    """Names of the image backbone's nodes in the graph at ``graph_path`` whose (4-d) output is at
    least ``width`` pixels wide, found by running it on ``feeds`` (one batch) with every backbone
    output exposed. Quantising these early, full-resolution layers cost the default most of its
    int8 error: on FERPlus Valid, relative logit error 1.7 % with them, 1.3 % without. The nodes are
    found by the module scopes in their names (TorchScript export); a graph without them is
    quantised whole."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(graph_path))
    nodes = [node for node in graph.graph.node if f"/{BACKBONE_SCOPE}/" in node.name]
    outputs = [node.output[0] for node in nodes]
    del graph.graph.output[:]
    graph.graph.output.extend(onnx.ValueInfoProto(name=name) for name in outputs)
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = [value.shape for value in session.run(None, {name: value[:1] for name, value in feeds.items()})]
    return [node.name for node, shape in zip(nodes, shapes) if len(shape) == 4 and shape[-1] >= width]


# ----------------------------------------------------------------------------- generated faces
def _arc(indices, centre, radii, start: float, stop: float) -> dict[int, tuple[float, float]]:
    """Spread mesh points ``indices`` evenly on an elliptic arc from angle ``start`` to ``stop``."""
    angles = np.linspace(start, stop, len(indices))
    return {i: (centre[0] + radii[0] * np.cos(a), centre[1] + radii[1] * np.sin(a)) for i, a in zip(indices, angles)}


def _cartoon_mesh(mouth_open: float, smile: float, brow: float, eye_open: float, width: float) -> np.ndarray:
    """``(468, 2)`` mesh points of a cartoon face in [0, 1] crop coordinates: every part the priors
    draw on an ellipse (the remaining points at the face centre)."""
    import importlib

    pm = importlib.import_module("orsanet.priors.parsing_map")  # orsanet.priors re-exports a function of that name
    xy = np.tile([0.5, 0.55], (468, 1))
    n = len(pm.FACE_OVAL)
    parts = _arc(pm.FACE_OVAL, (0.5, 0.575), (0.35 * width, 0.425), -np.pi / 2, -np.pi / 2 + 2 * np.pi * (n - 1) / n)
    for eye, cx in ((pm.SUBJECT_RIGHT_EYE, 0.34), (pm.SUBJECT_LEFT_EYE, 0.66)):
        parts.update(_arc(eye, (cx, 0.38), (0.085, eye_open), 0, 2 * np.pi * 15 / 16))
    for brow_points, cx in ((pm.SUBJECT_RIGHT_BROW, 0.33), (pm.SUBJECT_LEFT_BROW, 0.67)):
        parts.update(_arc(brow_points, (cx, 0.30 - brow), (0.11, 0.02), 0, 2 * np.pi * 9 / 10))
    parts.update(_arc(pm.NOSE, (0.5, 0.5), (0.08, 0.14), -np.pi / 2, 3 * np.pi / 2 * 17 / 18))
    for upper, lower, radii, gap in ((pm.UPPER_OUTER, pm.LOWER_OUTER, (0.13, 0.05), 0.02),
                                     (pm.UPPER_INNER, pm.LOWER_INNER, (0.1, 0.01), 0.0)):
        top = _arc(upper, (0.5, 0.75 - mouth_open / 2 - gap / 2), radii, np.pi, 2 * np.pi)
        bottom = _arc(lower, (0.5, 0.75 + mouth_open / 2 + gap / 2), (radii[0], radii[1] + mouth_open / 2), np.pi, 0.0)
        for arc in (top, bottom):  # a smile lifts the mouth corners
            parts.update({i: (x, y - smile * ((x - 0.5) / radii[0]) ** 2) for i, (x, y) in arc.items()})
    for i, point in parts.items():
        xy[i] = point
    return xy


def generated_faces(contract: InputContract, count: int = 32, seed: int = 0
                    ) -> tuple[torch.Tensor, Geometry, torch.Tensor]:
    """``count`` cartoon faces for calibration: ``pixels (N, 3, S, S)`` in [0, 1] as the contract frames
    faces, their mesh geometry (``MeshPriors``: points, presence; one face in eight without a fit)
    and ``hidden (N, S, S)`` (one face in four under a flat occluder). Each face is a painted
    parsing map (random skin, background, lighting, expression, pose) of a cartoon mesh."""
    import torch.nn.functional as F

    from orsanet.priors.parsing_map import parsing_labels

    rng = np.random.default_rng(seed)
    size = contract.input_size
    raster = 2 * size
    pixels, points, presence, hidden = [], [], [], []
    for index in range(count):
        xy = _cartoon_mesh(mouth_open=rng.uniform(0, 0.09) * (rng.random() < 0.6), smile=rng.uniform(-0.02, 0.05),
                           brow=rng.uniform(-0.02, 0.04), eye_open=rng.uniform(0.012, 0.04),
                           width=rng.uniform(0.9, 1.1))
        angle, scale, shift = np.radians(rng.uniform(-12, 12)), rng.uniform(0.85, 1.05), rng.uniform(-0.04, 0.04, 2)
        turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        xy = (xy - [0.5, 0.55]) @ turn.T * scale + [0.5, 0.55] + shift
        if rng.random() < 0.5:
            xy = xy @ np.diag([-1, 1]) + [1, 0]  # mirrored (parts keep their indices: a left-right-swapped face)
        point = torch.tensor(xy, dtype=torch.float32)
        labels = parsing_labels(point[None] * raster, (raster, raster), raster=raster)[0]
        skin = rng.uniform(0.35, 0.9) * np.array([1.0, rng.uniform(0.72, 0.85), rng.uniform(0.55, 0.75)])
        colours = np.empty((11, 3))
        colours[0] = rng.uniform(0.0, 1.0, 3)  # background
        colours[1], colours[6] = skin, skin * 0.93  # skin, nose
        colours[2:4] = skin * rng.uniform(0.2, 0.5)  # brows
        colours[4:6] = rng.uniform(0.05, 0.25)  # eyes
        colours[7], colours[9] = skin * [0.8, 0.55, 0.55], skin * [0.75, 0.5, 0.5]  # lips
        colours[8] = rng.uniform(0.05, 0.8)  # inner mouth (dark, or teeth)
        colours[10] = rng.uniform(0.0, 0.5, 3)
        image = torch.tensor(colours, dtype=torch.float32)[labels].permute(2, 0, 1)  # (3, R, R)
        ramp = torch.linspace(-1, 1, raster)
        direction = rng.uniform(-1, 1, 2)
        light = 1 + 0.25 * (direction[0] * ramp.view(1, -1) + direction[1] * ramp.view(-1, 1))
        image = F.avg_pool2d((image * light)[None], 3, 1, 1, count_include_pad=False)
        image = F.interpolate(image, size=(size, size), mode="area")[0]
        image = image + torch.from_numpy(rng.normal(0, 0.02, image.shape).astype(np.float32))
        mask = torch.zeros(size, size, dtype=torch.bool)
        if index % 4 == 3:  # a flat occluder over part of the face
            w, h = (rng.uniform(0.3, 0.6, 2) * size).astype(int)
            x0, y0 = rng.integers(0, size - w), rng.integers(size // 4, size - h)
            mask[y0:y0 + h, x0:x0 + w] = True
            image[:, mask] = torch.tensor(rng.uniform(0, 1, 3), dtype=torch.float32).view(3, 1)
        image = image.clamp(0, 1)
        if contract.color == "gray":
            image = (image * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True).expand(3, -1, -1)
        found = index % 8 != 7
        pixels.append(image)
        points.append(point if found else torch.full_like(point, float("nan")))
        presence.append(1.0 if found else 0.0)
        hidden.append(mask)
    return (torch.stack(pixels).contiguous(), {"points": torch.stack(points), "presence": torch.tensor(presence)},
            torch.stack(hidden))


# ------------------------------------------------------------------------------------- runtime
def _session(path: Path, threads: int | None):
    from orsanet.onnx_runtime import open_session

    try:
        return open_session(path, threads)
    except Exception as error:  # noqa: BLE001
        raise ExportError(f"{path}: cannot open the ONNX graph ({error})") from None


def _run(session, feeds: dict[str, np.ndarray], dynamic: bool) -> list[np.ndarray]:
    """Run a graph; one face at a time when its batch axis is fixed."""
    if dynamic or next(iter(feeds.values())).shape[0] == 1:
        return session.run(None, feeds)
    count = len(next(iter(feeds.values())))
    runs = [session.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(count)]
    return [np.concatenate(parts) for parts in zip(*runs)]


class _OrtMeshNet(nn.Module):
    """Stands in for ``FaceMeshNet`` inside ``FaceMesh``: the exported mesh graph on ONNX Runtime."""

    def __init__(self, session, dynamic: bool) -> None:
        super().__init__()
        self.session, self.dynamic = session, dynamic

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feeds = {"crops": crops.detach().cpu().float().contiguous().numpy()}
        points, logits = _run(self.session, feeds, self.dynamic)
        return torch.from_numpy(points).to(crops.device), torch.from_numpy(logits).to(crops.device)


class OnnxMeshPriors(MeshPriors):
    """``MeshPriors`` whose mesh network is the exported mesh graph (crop, projection, re-crop and
    drawing: orsanet's code, unchanged); the mirror permutation comes from the graph's metadata."""

    def __init__(self, mesh_path: str | os.PathLike, threads: int | None = None) -> None:
        from orsanet.priors.face_mesh import FaceMesh

        self.mesh_path = Path(mesh_path)
        session = _session(self.mesh_path, threads)
        values = _decode(session.get_modelmeta().custom_metadata_map, self.mesh_path)
        if values.get("role") != "face_mesh":
            raise ExportError(f"{mesh_path}: not a face-mesh graph")
        prior = values.get("prior") or {}
        if prior.get("backend") != MeshPriors.name or prior.get("version") != MeshPriors.version:
            raise ExportError(f"{mesh_path}: mesh graph for prior {prior.get('backend')!r} version "
                              f"{prior.get('version')!r}, this orsanet draws {MeshPriors.name!r} version "
                              f"{MeshPriors.version}")
        super().__init__("cpu", refine=prior["refine"], presence_threshold=prior["presence_threshold"],
                         size=prior["prior_size"])
        with torch.random.fork_rng(devices=[]):
            mesh = FaceMesh(weights=None, padding_mode=prior.get("padding_mode", "border"), runtime="pytorch")
        mesh.net = _OrtMeshNet(session, values.get("dynamic_batch", True))
        mesh.flip_permutation.copy_(torch.tensor(values["flip_permutation"]))
        self._mesh = mesh

    def to(self, device: torch.device | str) -> "OnnxMeshPriors":
        if torch.device(device).type != "cpu":
            raise ExportError("OnnxMeshPriors runs on the CPU")
        return self

    def mirror(self, geometry: Geometry) -> Geometry:
        points = geometry["points"][:, self._mesh.flip_permutation.to(geometry["points"].device)].clone()
        points[..., 0] = 1 - points[..., 0]
        return {**geometry, "points": points}


class _OrtPriorNet(nn.Module):
    """Stands in for ``OcclusionPriorNet``: the exported prior graph on ONNX Runtime."""

    def __init__(self, session, dynamic: bool) -> None:
        super().__init__()
        self.session, self.dynamic = session, dynamic

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        arrays = _run(self.session, {"pixels": pixels.detach().cpu().float().contiguous().numpy()}, self.dynamic)
        return {name: torch.from_numpy(a) for name, a in zip(("parsing", "heatmaps", "visibility", "face"), arrays)}


class OnnxOcclusionPriors(OcclusionNetPriors):
    """``OcclusionNetPriors`` whose network is the exported prior graph (drawing: orsanet's code)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        super().__init__("cpu", runtime="pytorch")  # its network is already the graph below
        session = _session(Path(path), threads)
        values = _decode(session.get_modelmeta().custom_metadata_map, Path(path))
        prior = values.get("prior") or {}
        if values.get("role") != "prior_net" or prior.get("version") != OcclusionNetPriors.version:
            raise ExportError(f"{path}: not a prior-network graph of version {OcclusionNetPriors.version}")
        self._net = _OrtPriorNet(session, values.get("dynamic_batch", True))

    def to(self, device: torch.device | str) -> "OnnxOcclusionPriors":
        if torch.device(device).type != "cpu":
            raise ExportError("OnnxOcclusionPriors runs on the CPU")
        return self


class OnnxFaceModel:
    """An exported graph on ONNX Runtime with ``FaceModel``'s interface: ``logits(pixels, geometry, flip)``.

    Labels and input contract are read from the graph's metadata. For a mesh-prior model the
    geometry is measured with the exported mesh graph (``mesh_graph`` in the metadata, next to the
    file) through ``OnnxMeshPriors``; ``mesh_path`` overrides where it is. ``threads``: ONNX
    Runtime's intra-op threads (default: ``torch.get_num_threads()``). Runs on the CPU."""

    def __init__(self, path: str | os.PathLike, *, mesh_path: str | os.PathLike | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ExportError(f"{self.path}: no such ONNX file")
        self.session = _session(self.path, threads)
        self.metadata = _decode(self.session.get_modelmeta().custom_metadata_map, self.path)
        if self.metadata.get("role") == "face_mesh":
            raise ExportError(f"{self.path}: this is the face-mesh graph; open the classifier graph next to it")
        self.contract = InputContract.from_dict(self.metadata["preprocessing"])
        self.label_names = list(self.metadata["label_names"])
        self.prior_backend = self.metadata.get("prior_backend")
        self.input_names = [i["name"] for i in self.metadata["inputs"]]
        self.dynamic = bool(self.metadata.get("dynamic_batch", True))
        self.priors: OnnxMeshPriors | OnnxOcclusionPriors | None = None
        if self.prior_backend == "mesh":
            mesh = Path(mesh_path) if mesh_path is not None else self.path.with_name(self.metadata["mesh_graph"])
            if not mesh.is_file():
                raise ExportError(f"{self.path}: its face-mesh graph {mesh} is missing")
            self.priors = OnnxMeshPriors(mesh, threads)
        elif self.prior_backend == OcclusionNetPriors.name:
            graph = self.path.with_name(self.metadata["prior_graph"])
            if not graph.is_file():
                raise ExportError(f"{self.path}: its prior-network graph {graph} is missing")
            self.priors = OnnxOcclusionPriors(graph, threads)
        elif self.prior_backend is not None:
            raise ExportError(f"{self.path}: prior backend {self.prior_backend!r} is not supported")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def measure(self, pixels: torch.Tensor) -> Geometry | None:
        """The mesh geometry of ``pixels (B, 3, S, S)``, or None for a model without a backend."""
        return self.priors.measure(torch.as_tensor(pixels).cpu()) if self.priors is not None else None

    def inputs(self, pixels: torch.Tensor, geometry: Geometry | None = None,
               hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """As ``FaceModel.inputs``: (normalised images, raw priors by input name)."""
        pixels = torch.as_tensor(pixels).cpu().float()
        images = self.contract.normalise(pixels)
        if self.priors is None:
            return images, {}
        geometry = self.measure(pixels) if geometry is None else {k: v.cpu() for k, v in geometry.items()}
        return images, self.priors.draw(geometry, hidden)

    def run(self, images: torch.Tensor, **priors: torch.Tensor) -> torch.Tensor:
        """The classifier graph on normalised images (+ raw priors) -> ``(B, classes)`` logits."""
        feeds = {"images": images, **priors}
        missing = [name for name in self.input_names if name not in feeds]
        if missing:
            raise ValueError(f"{self.path}: missing inputs {', '.join(missing)}")
        arrays = {name: torch.as_tensor(feeds[name]).detach().cpu().float().contiguous().numpy()
                  for name in self.input_names}
        return torch.from_numpy(_run(self.session, arrays, self.dynamic)[0])

    def logits(self, pixels: torch.Tensor, geometry: Geometry | None = None, flip: bool = False) -> torch.Tensor:
        """``(B, classes)`` logits of ``pixels (B, 3, S, S)`` in [0, 1]; ``flip`` as in ``FaceModel.logits``."""
        pixels = torch.as_tensor(pixels).cpu().float()
        if self.priors is not None and geometry is None:
            geometry = self.measure(pixels)
        images, priors = self.inputs(pixels, geometry)
        logits = self.run(images, **priors)
        if not flip:
            return logits
        mirrored = self.priors.mirror(geometry) if self.priors is not None else None
        images, priors = self.inputs(pixels.flip(-1), mirrored)
        return (logits + self.run(images, **priors)) / 2
