"""``orsanet robustness``: several models (ours and peers) under the same occlusions, in one harness.

Every image is read once per batch, its face mesh is fitted once on the clean image at its native
resolution, and for each occlusion setting the occluder is drawn **once** on that native image
(seed ``image_seed(seed, f"{setting}/{name}")``) and rounded to 8 bits, as if saved. Only then does
each model turn that same image into its own input (size, colour) through its input contract, so
every model meets identical occluded pixels. Each model is scored on the images whose class it
knows (labels mapped by name, ``label_protocol``); the report says which classes and how many
images that is.

    report = robustness(["default", "peer:fer-mini-xception"], "data/ferplus", limit=800)
    print(format_table(report))

Settings are ``kind`` or ``kind@area`` (``orsanet.occlusion.KINDS``); the default is the paper's
mean-filled square at 10/20/30 %, a black square at 20 %, the 8 region boxes and six realistic
occluders (:data:`DEFAULT_SETTINGS`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orsanet.contract import InputContract
from orsanet.engine.evaluate import ablated_inputs, file_sha256, label_protocol, resolve_split, source_commit
from orsanet.occlusion import REGIONS, image_seed, occlude
from orsanet.occlusion.dataset import check_kind, image_tensor, measure_points, placement_mesh, to_uint8

log = logging.getLogger(__name__)

PEER_PREFIX = "peer:"
# ``empty-priors:MODEL`` / ``shuffled-priors:MODEL`` / ``priors-only:MODEL``: MODEL given no priors,
# another face's, or its own with the face blanked (the ablations of ``orsanet eval --priors``), side by
# side with MODEL itself.
ABLATION_PREFIXES = {"empty-priors:": "empty", "shuffled-priors:": "shuffled", "priors-only:": "only"}
REALISTIC_SETTINGS = ("medical_mask", "sunglasses", "hand", "hair", "scarf", "microphone")
DEFAULT_SETTINGS = ("square_mean@0.1", "square_mean@0.2", "square_mean@0.3", "square_black@0.2", *REGIONS,
                    *REALISTIC_SETTINGS)
CLEAN = "clean"


class RobustnessError(ValueError):
    """Bad input for :func:`robustness` (a setting, a model name), in one line."""


# ------------------------------------------------------------------ settings
@dataclass(frozen=True)
class Setting:
    """One occlusion condition: ``name`` (``kind`` or ``kind@area``), the kind and its parameters."""

    name: str
    kind: str
    params: dict = field(default_factory=dict)

    @property
    def area(self) -> float | None:
        return self.params.get("area")

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "params": dict(self.params)}


def parse_settings(settings: str | Sequence[str] | None) -> list[Setting]:
    """``"square_mean@0.1,eyes"`` (or a list of such names; None: :data:`DEFAULT_SETTINGS`) -> settings.
    Raises RobustnessError for an unknown kind, a bad area or a kind that takes no area."""
    if settings is None:
        settings = DEFAULT_SETTINGS
    if isinstance(settings, str):
        settings = settings.split(",")
    parsed, seen = [], set()
    for text in settings:
        text = text.strip()
        if not text:
            continue
        kind, _, area_text = text.partition("@")
        params = {}
        if area_text:
            try:
                area = float(area_text)
            except ValueError:
                raise RobustnessError(f"setting {text!r}: the area must be a number, e.g. square_mean@0.2") from None
            if not 0 < area < 1:
                raise RobustnessError(f"setting {text!r}: the area must lie between 0 and 1")
            params["area"] = area
        try:
            check_kind(kind, **params)
        except ValueError as error:
            raise RobustnessError(f"setting {text!r}: {error}") from None
        name = f"{kind}@{params['area']:g}" if params else kind
        if name in seen or name == CLEAN:
            raise RobustnessError(f"setting {name!r} is given twice" if name in seen else "'clean' is always run")
        seen.add(name)
        parsed.append(Setting(name, kind, params))
    if not parsed:
        raise RobustnessError("no occlusion settings given")
    return parsed


# ------------------------------------------------------------------ models
class HarnessModel:
    """Our model file or a peer behind one interface: ``name``, ``label_names``, ``input_size``,
    ``color``, ``contract`` (how a native image becomes the model's pixels), ``pixels(image)`` and
    ``logits(pixels (B, 3, S, S)) -> (B, C)``, plus ``provenance`` for the report.

    Our models read pixels through their own input contract and measure their priors on them
    (``FaceModel.logits``); a peer reads an RGB resize (bilinear) at its input size, greyed first
    for a grey peer, and does its own normalisation.
    """

    def __init__(self, name: str, spec: str, source: str, label_names: Sequence[str], contract: InputContract,
                 classify, provenance: dict) -> None:
        self.name, self.spec, self.source = name, spec, source
        self.label_names = list(label_names)
        self.contract = contract
        self._classify = classify
        self.provenance = provenance

    @property
    def input_size(self) -> int:
        return self.contract.input_size

    @property
    def color(self) -> str:
        return self.contract.color

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """A native image (PIL) -> the ``(3, S, S)`` pixels in [0, 1] this model reads."""
        return self.contract.pixels(image)

    @torch.no_grad()
    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._classify(pixels).float().cpu()

    @classmethod
    def load(cls, spec: str, device: str | torch.device = "cpu", **options) -> "HarnessModel":
        """``peer:NAME`` (``orsanet.peers.PEERS``), ``default``, a model file or an exported ``.onnx`` graph,
        the last three optionally behind an ``ABLATION_PREFIXES`` prefix; ``options``: ``FaceModel``'s,
        for a model file (e.g. ``channels_last``)."""
        if spec.startswith(PEER_PREFIX):
            from orsanet.peers import PEERS, WEIGHTS_DIR, load_peer

            name = spec[len(PEER_PREFIX):]
            if name not in PEERS:
                raise RobustnessError(f"unknown peer {name!r} (known: {', '.join(PEER_PREFIX + p for p in PEERS)})")
            peer = load_peer(name, device)
            contract = InputContract(input_size=peer.input_size, color=peer.color, interpolation="bilinear")
            weights = WEIGHTS_DIR / PEERS[name].weights

            def classify(pixels: torch.Tensor) -> torch.Tensor:
                return peer(pixels.to(device)).logits

            provenance = {"peer": name, "weights_file": weights.name, "weights_sha256": file_sha256(weights),
                          **{k: str(v) for k, v in peer.provenance.items()}}
            return cls(name, spec, "peer", peer.label_names, contract, classify, provenance)

        from orsanet.checkpoint import resolve_model_path
        from orsanet.face_model import load_face_model, model_metadata

        prefix = next((p for p in ABLATION_PREFIXES if spec.startswith(p)), "")
        model_spec, ablation = spec[len(prefix):], ABLATION_PREFIXES.get(prefix)
        path = resolve_model_path(model_spec)
        face = load_face_model(path, device, **options)  # a model file, or an exported .onnx graph (ONNX Runtime)
        metadata = model_metadata(face)
        provenance = {"file": str(path), "sha256": file_sha256(path), "config": metadata["config"],
                      "input_contract": face.contract.to_dict(), "model_provenance": metadata["provenance"]}
        name = "default" if model_spec == "default" else path.stem
        classify = face.logits
        if ablation is not None:
            if face.priors is None:
                raise RobustnessError(f"{spec}: {model_spec} has no prior backend to take its priors from")
            name, provenance["priors"] = f"{prefix}{name}", ablation

            def classify(pixels: torch.Tensor) -> torch.Tensor:
                pixels = pixels.to(face.device)
                return face.logits(*ablated_inputs(face, pixels, None, ablation))
        return cls(name, spec, "orsanet", face.label_names, face.contract, classify, provenance)


def _unique_names(models: list[HarnessModel]) -> None:
    seen: dict[str, int] = {}
    for model in models:
        count = seen.get(model.name, 0) + 1
        seen[model.name] = count
        if count > 1:
            model.name = f"{model.name}#{count}"


# ------------------------------------------------------------------ selection
def stratified_first(indices: Sequence[int], targets: Sequence[int], limit: int) -> list[int]:
    """``limit`` of ``indices``, each class keeping its share of the split (largest remainder; the
    first images of each class in dataset order), returned in dataset order."""
    indices = list(indices)
    if limit >= len(indices):
        return indices
    by_class: dict[int, list[int]] = {}
    for index, target in zip(indices, targets):
        by_class.setdefault(int(target), []).append(index)
    exact = {c: limit * len(members) / len(indices) for c, members in by_class.items()}
    quota = {c: int(share) for c, share in exact.items()}
    for c in sorted(exact, key=lambda c: (quota[c] - exact[c], c))[: limit - sum(quota.values())]:
        quota[c] += 1
    chosen = {i for c, members in by_class.items() for i in members[: quota[c]]}
    return [i for i in indices if i in chosen]


# ------------------------------------------------------------------ figures
def _figures(report: dict, label_names: Sequence[str]) -> dict:
    support = {name: report["per_class"][name]["support"] for name in label_names}
    return {"accuracy": report["accuracy"], "mean_class_accuracy": report["mean_class_accuracy"],
            "macro_f1": report["macro_f1"], "num_images": report["num_images"],
            "per_class_recall": {name: report["per_class"][name]["recall"] for name in label_names if support[name]},
            "class_support": {name: n for name, n in support.items() if n}}


def _drops(clean: dict, occluded: dict) -> dict:
    """Drop from clean in points (clean minus occluded, times 100; positive = worse)."""
    return {"accuracy": 100 * (clean["accuracy"] - occluded["accuracy"]),
            "mean_class_accuracy": 100 * (clean["mean_class_accuracy"] - occluded["mean_class_accuracy"]),
            "per_class_recall": {name: 100 * (clean["per_class_recall"][name] - recall)
                                 for name, recall in occluded["per_class_recall"].items()}}


def robustness(models: Sequence[str], data_root: str, kind: str = "auto", split: str | None = None,
               settings: str | Sequence[str] | None = None, seed: int = 0, limit: int | None = None,
               batch_size: int = 64, device: str = "cpu", label_mode: str = "majority", show: bool = True) -> dict:
    """Evaluate ``models`` (``default``, model files, ``peer:NAME``) on one split, clean and under
    every occlusion setting; returns the report (see the module docstring and :func:`format_table`).
    """
    from tqdm import tqdm

    from orsanet.data import open_dataset
    from orsanet.engine.metrics import ClassificationMetrics

    if not models:
        raise RobustnessError("no models given")
    if batch_size < 1:
        raise RobustnessError(f"batch size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise RobustnessError(f"limit must be at least 1, got {limit}")
    if label_mode == "probability":
        raise RobustnessError("evaluation needs hard labels: use label mode majority or argmax")
    chosen_settings = parse_settings(settings)
    started = time.perf_counter()
    harness = [HarnessModel.load(spec, device) for spec in models]
    _unique_names(harness)

    kind, split = resolve_split(kind, Path(data_root), split)
    dataset = open_dataset(kind, data_root, split, label_mode=label_mode)
    dataset.scan_images()  # unreadable images are left out (and listed)
    where = f"{data_root} ({split or 'all'})"
    protocols = {m.name: label_protocol(m.label_names, dataset.label_names, f"{m.name} on {where}")
                 for m in harness}
    targets_all = [int(target) for _, target in dataset.samples]
    known = [i for i, t in enumerate(targets_all) if any(t in p.index_map for p in protocols.values())]
    indices = stratified_first(known, [targets_all[i] for i in known], limit) if limit else known
    if not indices:
        raise RobustnessError(f"{where}: no image any model can be scored on")

    names = [CLEAN] + [s.name for s in chosen_settings]
    metrics = {m.name: {n: ClassificationMetrics(m.label_names) for n in names} for m in harness}
    digests = {s.name: hashlib.sha256() for s in chosen_settings}
    hidden = {s.name: 0.0 for s in chosen_settings}
    priors = placement_mesh(device)
    fitted = 0
    batches = range(0, len(indices), batch_size)
    with tqdm(total=len(batches) * len(names), desc="robustness", unit="batch", disable=not show) as bar:
        for start in batches:
            batch = indices[start:start + batch_size]
            clean_images = [dataset.load_image(i) for i in batch]
            tensors = [image_tensor(image) for image in clean_images]
            points = measure_points(tensors, priors)
            fitted += sum(p is not None for p in points)
            targets = [targets_all[i] for i in batch]
            for setting in [None, *chosen_settings]:
                bar.set_postfix_str(CLEAN if setting is None else setting.name)
                if setting is None:
                    shown = clean_images
                else:
                    shown = []
                    for i, image, face in zip(batch, tensors, points):
                        seed_i = image_seed(seed, f"{setting.name}/{dataset.names[i]}")
                        occluded, mask, _ = occlude(image, face, setting.kind, seed_i, **setting.params)
                        array = to_uint8(occluded)
                        digests[setting.name].update(array.tobytes())
                        hidden[setting.name] += float(mask.float().mean())
                        shown.append(Image.fromarray(array, "RGB"))
                for model in harness:
                    index_map = protocols[model.name].index_map
                    keep = [j for j, t in enumerate(targets) if t in index_map]
                    if not keep:
                        continue
                    pixels = torch.stack([model.pixels(shown[j]) for j in keep])
                    metrics[model.name][CLEAN if setting is None else setting.name].update(
                        model.logits(pixels), np.array([index_map[targets[j]] for j in keep]))
                bar.update()

    evaluated_counts = dict.fromkeys(dataset.label_names, 0)
    for i in indices:
        evaluated_counts[dataset.label_names[targets_all[i]]] += 1
    report_models = {}
    for model in harness:
        protocol = protocols[model.name]
        clean_report = metrics[model.name][CLEAN].report()
        clean = _figures(clean_report, model.label_names)
        per_setting = {}
        for setting in chosen_settings:
            figures = _figures(metrics[model.name][setting.name].report(), model.label_names)
            per_setting[setting.name] = {**figures, "drop_points": _drops(clean, figures)}
        scored_classes = [dataset.label_names[d] for d in sorted(protocol.index_map) if evaluated_counts[
            dataset.label_names[d]]]
        report_models[model.name] = {
            "spec": model.spec, "source": model.source, "label_names": model.label_names,
            "input": {"size": model.input_size, "color": model.color}, "provenance": model.provenance,
            "classes_scored": scored_classes, "left_out_data_labels": protocol.unmapped_data_labels,
            "num_images": clean["num_images"], "images_left_out": len(indices) - clean["num_images"],
            "label_protocol": protocol.to_dict(), "clean": {**clean,
                                                             "confusion_matrix": clean_report["confusion_matrix"]},
            "settings": per_setting,
        }
    return {
        "models": report_models,
        "settings": [{**s.to_dict(), "images_sha256": digests[s.name].hexdigest(),
                      "mean_hidden_fraction": hidden[s.name] / len(indices)} for s in chosen_settings],
        "seed": int(seed), "seed_rule": "image_seed(seed, f'{setting}/{image name}')",
        "dataset": {"kind": kind, "root": str(data_root), "split": split, "label_mode": label_mode,
                    "label_names": dataset.label_names, "images_in_split": len(dataset),
                    "images_evaluated": len(indices), "limit": limit, "class_counts": evaluated_counts,
                    "unreadable_images": list(dataset.skipped), "faces_fitted": fitted},
        "occlusion_placement": "face mesh (MeshPriors) fitted once on each clean image at its native resolution; "
                               "the average face where none is fitted",
        "batch_size": batch_size, "device": str(device), "orsanet_commit": source_commit(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


# ------------------------------------------------------------------ output
def format_table(report: dict) -> str:
    """The printed summary: per model, its classes and images, then accuracy, mean class accuracy and
    their drop from clean (points) per setting."""
    lines = []
    data = report["dataset"]
    lines.append(f"{data['root']} ({data['split'] or 'all'}): {data['images_evaluated']} images, seed "
                 f"{report['seed']}, mesh fitted on {data['faces_fitted']}")
    for name, model in report["models"].items():
        left_out = (f"; left out: {', '.join(model['left_out_data_labels'])} ({model['images_left_out']} images)"
                    if model["images_left_out"] or model["left_out_data_labels"] else "")
        lines.append(f"{name}: scored on {model['num_images']} images, {len(model['classes_scored'])} classes "
                     f"({', '.join(model['classes_scored'])}){left_out}")
    lines.append("")
    header = f"{'model':22s} {'setting':18s} {'images':>6s} {'acc':>7s} {'mca':>7s} {'Δacc pt':>8s} {'Δmca pt':>8s}"
    lines += [header, "-" * len(header)]
    for name, model in report["models"].items():
        clean = model["clean"]
        lines.append(f"{name[:22]:22s} {CLEAN:18s} {clean['num_images']:6d} {clean['accuracy']:7.4f} "
                     f"{clean['mean_class_accuracy']:7.4f} {'':>8s} {'':>8s}")
        for setting, figures in model["settings"].items():
            drop = figures["drop_points"]
            lines.append(f"{'':22s} {setting[:18]:18s} {figures['num_images']:6d} {figures['accuracy']:7.4f} "
                         f"{figures['mean_class_accuracy']:7.4f} {drop['accuracy']:8.1f} "
                         f"{drop['mean_class_accuracy']:8.1f}")
    return "\n".join(lines)


def plot_report(report: dict, path: str) -> Path:
    """``--plot``: accuracy against the square's area, and bars over the other settings."""
    from orsanet.plots import plot_robustness

    squares, bars, clean = {}, {}, {}
    kinds = {s["name"]: s for s in report["settings"]}
    for name, model in report["models"].items():
        clean[name] = model["clean"]["accuracy"]
        squares[name] = {}
        bars[name] = {}
        for setting, figures in model["settings"].items():
            spec = kinds[setting]
            area = spec["params"].get("area")
            if spec["kind"].startswith("square") and area is not None:
                squares[name].setdefault(spec["kind"], []).append((area, figures["accuracy"]))
            else:
                bars[name][setting] = figures["accuracy"]
    data = report["dataset"]
    title = f"{Path(data['root']).name}/{data['split'] or '.'}: {data['images_evaluated']} images"
    return plot_robustness(squares, bars, clean, path, title=title)


def plot_sensitivity_report(report: dict, path: str) -> Path:
    """``--sensitivity``: per model, the drop in per-class recall (points) when each region is hidden."""
    from orsanet.plots import plot_region_sensitivity

    regions = [s["name"] for s in report["settings"] if s["kind"] in REGIONS and not s["params"]]
    if not regions:
        raise RobustnessError("the sensitivity map needs region settings (eyes, brows, nose, mouth, ...)")
    maps = {}
    for name, model in report["models"].items():  # columns in the data's class order, with their images
        classes = [c for c in report["dataset"]["label_names"] if c in model["clean"]["per_class_recall"]]
        matrix = [[model["settings"][region]["drop_points"]["per_class_recall"].get(c, float("nan"))
                   for c in classes] for region in regions]
        maps[name] = (regions, [f"{c} ({model['clean']['class_support'][c]})" for c in classes], matrix)
    data = report["dataset"]
    return plot_region_sensitivity(maps, path, title=f"Drop in per-class recall when a region is hidden "
                                                     f"({Path(data['root']).name}/{data['split'] or '.'}, "
                                                     f"{data['images_evaluated']} images)")


__all__ = ["CLEAN", "DEFAULT_SETTINGS", "HarnessModel", "RobustnessError", "Setting", "format_table",
           "parse_settings", "plot_report", "plot_sensitivity_report", "robustness", "stratified_first"]
