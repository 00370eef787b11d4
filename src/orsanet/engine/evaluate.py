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
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from orsanet.checkpoint import read_metadata, resolve_model_path
from orsanet.labels import LabelError
from orsanet.transforms import occlude_square

log = logging.getLogger(__name__)


@torch.no_grad()
def collect_predictions(model: torch.nn.Module, loader: DataLoader, device: torch.device,
                        max_batches: int | None = None, desc: str = "eval", amp_dtype=None, show: bool = True,
                        occlusion_area: float = 0.0, seed: int = 0, prepare=None,
                        flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Float logits ``(N, C)`` and targets (``(N,)`` or soft ``(N, C)``) on the CPU.

    ``occlusion_area`` > 0 applies the paper's random black square (seeded, so repeatable).
    ``flip``: average with the logits of the mirrored images (``ORSANet.classify``).
    ``prepare(batch, device) -> (images, priors, targets)`` unpacks batches that carry priors.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    all_logits, all_targets = [], []
    total = min(len(loader), max_batches or len(loader))
    for step, batch in enumerate(tqdm(loader, total=total, desc=desc, leave=False, disable=not show)):
        if max_batches and step >= max_batches:
            break
        images, priors, targets = prepare(batch, device) if prepare else (batch[0].to(device), {}, batch[1])
        images = occlude_square(images, occlusion_area, generator) if occlusion_area else images
        with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else torch.autocast(device.type, enabled=False):
            logits = model.classify(images, **priors, flip=True) if flip else model(images, **priors).logits
        all_logits.append(logits.float().cpu())
        all_targets.append(targets.cpu())
    return torch.cat(all_logits), torch.cat(all_targets)


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
    """Map the data's classes onto the model's by name; refuse when nothing maps."""
    model_index = {name: i for i, name in enumerate(model_labels)}
    index_map = {d: model_index[name] for d, name in enumerate(data_labels) if name in model_index}
    if not index_map:
        raise LabelError(f"{source}: none of the data's labels {data_labels} is a label of the model {model_labels}")
    unmapped = [name for name in data_labels if name not in model_index]
    model_only = [name for name in model_labels if name not in data_labels]
    for what, names in (("data labels the model does not know (images left out)", unmapped),
                        ("model labels absent from the data", model_only)):
        if names:
            log.warning("%s: %s: %s", source, what, ", ".join(names))
    return LabelProtocol(model_labels, data_labels, index_map, unmapped, model_only)


def evaluate(model_path: str, data_root: str, kind: str = "folder", split: str = "test", subset: str | None = None,
             label_mode: str = "majority", batch_size: int = 64, num_workers: int = 2, device: str = "cpu",
             occlusion: tuple[float, ...] = (), json_out: str | None = None, max_batches: int | None = None,
             flip: bool = False) -> dict:
    """Evaluate a model file on one split; optionally under the paper's random-square occlusion,
    and with ``flip`` averaging each face's logits with its mirror image's.

    Returns (and with ``json_out`` writes, plus ``<name>.confusion.png``) the report.
    """
    from orsanet.checkpoint import load_model
    from orsanet.data import open_dataset
    from orsanet.engine.metrics import ClassificationMetrics
    from orsanet.fileio import write_text_atomic
    from orsanet.plots import plot_confusion_matrix, plot_occlusion_curve
    from orsanet.transforms import eval_transform

    if label_mode == "probability":
        raise ValueError("evaluation needs hard labels: use label mode majority or argmax")
    path = resolve_model_path(model_path)
    metadata = read_metadata(path)
    model = load_model(path, device)
    dataset = open_dataset(kind, data_root, split, label_mode=label_mode, subset=subset,
                           transform=eval_transform(metadata.preprocessing.get("input_size", 224),
                                                    metadata.preprocessing["mean"], metadata.preprocessing["std"],
                                                    metadata.preprocessing.get("color", "rgb")))
    dataset.scan_images()  # unreadable images are left out (and listed), never replaced by others
    protocol = label_protocol(metadata.label_names, dataset.label_names, f"{data_root} ({split})")
    indices = [i for i, (_, target) in enumerate(dataset.samples) if int(target) in protocol.index_map]
    mapped = MappedTargets(dataset, indices, protocol.index_map)
    loader = DataLoader(mapped, batch_size=batch_size, num_workers=num_workers)
    conditions = [dataset.conditions[i] for i in indices] if dataset.conditions else None

    def run(area: float) -> dict:
        logits, targets = collect_predictions(model, loader, torch.device(device), max_batches,
                                              desc=f"eval {split}" + (f" occlusion {area:.0%}" if area else ""),
                                              occlusion_area=area, flip=flip)
        metrics = ClassificationMetrics(metadata.label_names)
        metrics.update(logits, targets, conditions[: len(targets)] if conditions else None)
        return metrics.report()

    report = run(0.0)
    report.update({
        "model": str(path), "checkpoint_sha256": file_sha256(path), "config": metadata.config.to_dict(),
        "test_time_flip": flip,
        "dataset": {"kind": kind, "root": str(data_root), "split": split, "label_mode": label_mode,
                    "subset": subset, "images_in_split": len(dataset), "unreadable_images": list(dataset.skipped)},
        "label_protocol": {**protocol.to_dict(), "left_out_images": len(dataset) - len(indices)},
        "orsanet_commit": source_commit(),
    })
    if occlusion:
        report["occlusion"] = {}
        for area in occlusion:
            occluded = run(area)
            report["occlusion"][f"{area:g}"] = {k: occluded[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1")}
    if json_out:
        out = Path(json_out)
        write_text_atomic(out, json.dumps(report, indent=2))
        stem = out.with_suffix("")
        plot_confusion_matrix(report["confusion_matrix"], metadata.label_names, f"{stem}.confusion.png",
                              title=f"{path.name} on {kind}/{split}")
        if occlusion:
            curve = [(0.0, report["accuracy"])] + [(float(a), v["accuracy"]) for a, v in report["occlusion"].items()]
            plot_occlusion_curve({path.name: curve}, f"{stem}.occlusion.png")
    return report
