"""``orsanet eval``: a model file on a dataset split, with labels mapped by name.

A model predicts in its own label space. Each image's label is mapped to the model's classes
*by name* (never by index), images whose class the model does not know are left out and listed,
and the report says exactly which protocol was measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from orsanet.engine.batches import blank_faces, split_batch
from orsanet.engine.distributed import init_distributed
from orsanet.face_model import FaceModel
from orsanet.labels import LabelError, label_mapping
from orsanet.transforms import occlude_square, square_positions

log = logging.getLogger(__name__)
CROPS = ("none", "detect")
# What the model is given as priors at test time: what its backend measures on each face, nothing
# (the backend's empty geometry: as where the prior fails), another face's (the previous in the batch),
# or its own priors with the face itself blanked (``only``: what the prior paths carry on their own).
PRIOR_MODES = ("measured", "empty", "shuffled", "only")


@torch.no_grad()
def collect_predictions(face: FaceModel, loader: DataLoader, max_batches: int | None = None, desc: str = "eval",
                        amp_dtype=None, show: bool = True, flip: bool = False,
                        priors: str = "measured") -> tuple[torch.Tensor, torch.Tensor]:
    """Float logits ``(N, C)`` and targets (``(N,)`` or soft ``(N, C)``) on the CPU.

    ``loader`` yields contract pixels with their targets, and optionally their cached geometry
    (training's validation); otherwise the priors are measured on the pixels, as ``predict`` does.
    ``flip``: average with the logits of the mirrored faces (``FaceModel.logits``). ``priors``: one
    of ``PRIOR_MODES`` (an ablation: does the model read its priors?).
    """
    if priors not in PRIOR_MODES:
        raise ValueError(f"priors must be one of {', '.join(PRIOR_MODES)}, got {priors!r}")
    if priors != "measured" and face.priors is None:
        raise ValueError(f"--priors {priors}: this model has no prior backend to take its priors from")
    all_logits, all_targets = [], []
    device = face.device
    total = min(len(loader), max_batches or len(loader))
    for step, batch in enumerate(tqdm(loader, total=total, desc=desc, leave=False, disable=not show)):
        if max_batches and step >= max_batches:
            break
        pixels, geometry, targets = split_batch(batch)
        pixels = pixels.to(device)
        pixels, geometry = ablated_inputs(face, pixels, geometry, priors)
        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else torch.autocast(device.type, enabled=False):
            logits = face.logits(pixels, geometry, flip=flip)
        all_logits.append(logits.float().cpu())
        all_targets.append(targets.cpu())
    return torch.cat(all_logits), torch.cat(all_targets)


def ablated_inputs(face: FaceModel, pixels: torch.Tensor, geometry, mode: str):
    """``(pixels (B, 3, S, S), geometry or None)`` as the prior ablation ``mode`` (``PRIOR_MODES``) has them."""
    if mode == "measured":
        return pixels, geometry
    if mode == "empty":
        return pixels, face.priors.empty(len(pixels), pixels.device)
    measured = geometry if geometry is not None else face.measure(pixels)
    if mode == "only":
        return blank_faces(pixels, 1.0, face.contract.mean), measured
    return pixels, {key: value.roll(1, 0) for key, value in measured.items()}  # face i gets face i-1's priors


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_commit() -> str | None:
    """The git commit of the orsanet source in use, when it runs from a checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


class MappedTargets(Dataset):
    """A dataset whose targets are re-indexed into a model's label space (only mappable samples)."""

    def __init__(self, dataset: Dataset, indices: list[int], index_map: dict[int, int]):
        self.dataset, self.indices, self.index_map = dataset, indices, index_map

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        image, target = self.dataset[self.indices[i]]
        return image, self.index_map[int(target)]


class SquareOccluded(Dataset):
    """A dataset of contract pixels with the paper's square pasted on image ``i`` at ``positions[i]``
    (filled with the contract's mean colour: the paper's 0 after normalisation). The positions are drawn
    for the whole split in order (``square_positions``), so any shard of it meets the same squares."""

    def __init__(self, dataset: Dataset, area: float, fill, positions: torch.Tensor) -> None:
        self.dataset, self.area, self.fill, self.positions = dataset, area, fill, positions

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        pixels, target = self.dataset[i]
        return occlude_square(pixels[None], self.area, self.fill, positions=self.positions[i:i + 1])[0], target


def gather_in_order(context, mine: list[int], logits: torch.Tensor, targets: torch.Tensor):
    """Every process's (indices, logits, targets) -> the whole split's, in the split's order."""
    import torch.distributed as dist

    parts = [None] * context.world_size
    dist.all_gather_object(parts, (mine[: len(logits)], logits, targets))
    indices = torch.tensor([i for part in parts for i in part[0]])
    order = torch.argsort(indices)
    return torch.cat([p[1] for p in parts])[order], torch.cat([p[2] for p in parts])[order]


class DetectedFaces(Dataset):
    """Photos -> the contract pixels of their most confident face, framed as ``predict`` frames faces
    (``orsanet.inference.framing``); photos without a face are found by :meth:`scan` and left out."""

    def __init__(self, dataset, contract, min_face: float) -> None:
        self.dataset, self.contract, self.min_face = dataset, contract, min_face
        self.frames: dict[int, tuple] = {}
        self._finder = None

    def finder(self):
        if self._finder is None:  # built in each worker on first use
            from orsanet.inference.framing import FaceFinder

            self._finder = FaceFinder(self.contract, min_face=self.min_face)
        return self._finder

    def scan(self, indices: list[int], show: bool = True) -> list[int]:
        """Detect faces in the photos at ``indices``; returns those where no face was found."""
        faceless = []
        for i in tqdm(indices, desc="detect faces", leave=False, disable=not show):
            best = self.finder().best_face(self.dataset.load_image(i))
            if best is None:
                faceless.append(i)
            else:
                self.frames[i] = best.frame
        return faceless

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        _, target = self.dataset.samples[index]
        return self.contract.cut(self.dataset.load_image(index), self.frames[index]), target


@dataclass
class LabelProtocol:
    model_labels: list[str]
    data_labels: list[str]
    index_map: dict[int, int]  # data class index -> model class index
    unmapped_data_labels: list[str] = field(default_factory=list)
    model_only_labels: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"model_labels": self.model_labels, "data_labels": self.data_labels,
                "mapping": {self.data_labels[d]: self.model_labels[m] for d, m in self.index_map.items()},
                "left_out_data_labels": self.unmapped_data_labels, "model_labels_absent_from_data": self.model_only_labels}


def label_protocol(model_labels: list[str], data_labels: list[str], source: str) -> LabelProtocol:
    """Map the data's classes onto the model's by name (``labels.label_mapping``, aliases included);
    refuse when nothing maps."""
    index_map, unmapped = label_mapping(data_labels, model_labels)
    if not index_map:
        raise LabelError(f"{source}: none of the data's labels {data_labels} is a label of the model {model_labels}")
    _, model_only = label_mapping(model_labels, data_labels)
    for what, names in (("data labels the model does not know (images left out)", unmapped),
                        ("model labels absent from the data", model_only)):
        if names:
            log.warning("%s: %s: %s", source, what, ", ".join(names))
    return LabelProtocol(model_labels, data_labels, index_map, unmapped, model_only)


def resolve_split(kind: str, root: Path, split: str | None) -> tuple[str, str | None]:
    """(kind, split) to open: ``auto`` detected; no split means ``test``, or for a folder tree without
    a ``test`` folder the root itself (a flat ``root/<class>/image`` tree)."""
    from orsanet.data import detect_kind

    if kind == "auto":
        kind = detect_kind(root)
        log.info("%s: dataset kind %s", root, kind)
    if split is None:
        split = "test"
        if kind == "folder" and not (root / "test").is_dir():
            split = None
    return kind, split or None


def evaluate(model_path: str, data_root: str, kind: str = "auto", split: str | None = None, subset: str | None = None,
             label_mode: str = "majority", batch_size: int = 64, num_workers: int = 2, device: str = "cpu",
             occlusion: tuple[float, ...] = (), json_out: str | None = None, max_batches: int | None = None,
             flip: bool = False, crop: str = "none", min_face: float = 20.0, per_image: bool = False,
             backend: str = "auto", priors: str = "measured", **speed) -> dict:
    """Evaluate a model file on one split; optionally under the paper's random-square occlusion,
    and with ``flip`` averaging each face's logits with its mirror image's.

    ``crop``: ``none`` (the images are face crops: resized whole, as training did) or ``detect``
    (photos: the most confident face is found and framed as ``predict`` frames faces; images without
    a face are left out and listed). ``per_image``: the report also holds every image's name and class
    probabilities (clean run). ``priors``: ``measured`` (as ``predict``), or an ablation: ``empty``
    (no priors), ``shuffled`` (each face given another face's) or ``only`` (its own, the face
    blanked). ``backend``: ``pytorch``, or ``onnxruntime`` for an exported ``.onnx`` graph
    (``auto``: by the file's suffix); ``speed``: ``amp``, ``channels_last``, ``compile`` (``FaceModel``).
    Returns (and with ``json_out`` writes, plus ``<name>.confusion.png``) the report.
    """
    from orsanet.checkpoint import resolve_model_path
    from orsanet.data import open_dataset
    from orsanet.engine.metrics import ClassificationMetrics
    from orsanet.fileio import write_text_atomic
    from orsanet.plots import plot_confusion_matrix, plot_occlusion_curve

    if label_mode == "probability":
        raise ValueError("evaluation needs hard labels: use label mode majority or argmax")
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(CROPS)}, got {crop!r}")
    from orsanet.face_model import load_face_model, model_metadata

    path = resolve_model_path(model_path)
    face = load_face_model(path, device, backend, **speed)
    label_names = face.label_names
    kind, split = resolve_split(kind, Path(data_root), split)
    dataset = open_dataset(kind, data_root, split, label_mode=label_mode, subset=subset,
                           transform=face.contract.pixels)
    dataset.scan_images()  # unreadable images are left out (and listed), never replaced by others
    where = f"{data_root} ({split or 'all'})"
    protocol = label_protocol(label_names, dataset.label_names, where)
    indices = [i for i, (_, target) in enumerate(dataset.samples) if int(target) in protocol.index_map]
    faceless: list[str] = []
    source: Dataset = dataset
    if crop == "detect":
        source = DetectedFaces(dataset, face.contract, min_face)
        missing = set(source.scan(indices))
        faceless = [str(dataset.samples[i][0]) for i in sorted(missing)]
        if faceless:
            log.warning("%s: no face found in %d of %d images (left out)", where, len(faceless), len(indices))
        indices = [i for i in indices if i not in missing]
        if not indices:
            raise LabelError(f"{where}: no face found in any image")
    mapped = MappedTargets(source, indices, protocol.index_map)
    conditions = [dataset.conditions[i] for i in indices] if dataset.conditions else None
    # Under torchrun each process takes every world_size-th image; rank 0 gathers and reports.
    context = init_distributed(face.device)
    mine = list(range(context.rank, len(mapped), context.world_size))

    def run(area: float) -> tuple[dict, torch.Tensor]:
        """The report of one setting, and its logits (in the order of ``indices``)."""
        size = face.contract.input_size
        split_data = mapped if not area else SquareOccluded(
            mapped, area, face.contract.mean, square_positions(len(mapped), size, size, area, torch.Generator().manual_seed(0)))
        loader = DataLoader(Subset(split_data, mine) if context.enabled else split_data, batch_size=batch_size,
                            num_workers=num_workers)
        logits, targets = collect_predictions(face, loader, max_batches, show=context.is_main, flip=flip,
                                              desc=f"eval {split or ''}" + (f" occlusion {area:.0%}" if area else ""),
                                              priors=priors)
        if context.enabled:
            logits, targets = gather_in_order(context, mine, logits, targets)
        metrics = ClassificationMetrics(label_names)
        metrics.update(logits, targets, conditions[: len(targets)] if conditions else None)
        return metrics.report(), logits

    report, clean_logits = run(0.0)
    report.update({
        "model": str(path), "checkpoint_sha256": file_sha256(path), "config": model_metadata(face)["config"],
        "backend": type(face).__name__,
        "input_contract": face.contract.to_dict(), "test_time_flip": flip, "priors": priors,
        "dataset": {"kind": kind, "root": str(data_root), "split": split, "label_mode": label_mode,
                    "subset": subset, "crop": crop, "images_in_split": len(dataset),
                    "unreadable_images": list(dataset.skipped), "images_without_face": faceless},
        "label_protocol": {**protocol.to_dict(), "left_out_images": len(dataset) - len(indices) - len(faceless)},
        "orsanet_commit": source_commit(),
    })
    if occlusion:
        report["occlusion"] = {}
        for area in occlusion:
            occluded, _ = run(area)
            report["occlusion"][f"{area:g}"] = {k: occluded[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1")}
    if per_image:
        report["per_image"] = {"labels": label_names,
                               "names": [dataset.names[i] for i in indices[: len(clean_logits)]],
                               "probabilities": clean_logits.softmax(1).tolist()}
    if json_out and context.is_main:
        out = Path(json_out)
        write_text_atomic(out, json.dumps(report, indent=2))
        stem = out.with_suffix("")
        plot_confusion_matrix(report["confusion_matrix"], label_names, f"{stem}.confusion.png",
                              title=f"{path.name} on {kind}/{split or '.'}")
        if occlusion:
            curve = [(0.0, report["accuracy"])] + [(float(a), v["accuracy"]) for a, v in report["occlusion"].items()]
            plot_occlusion_curve({path.name: curve}, f"{stem}.occlusion.png")
    return report
