"""Reading the authors' files: official ORSANet checkpoints and the three pretrained components.

Official training checkpoints are ``{'iter', 'model_state_dict', 'optimizer_state_dict'}`` with
every key prefixed ``module.``; the layout of each key is listed in the project's key manifest.
Only tensors are read (``torch.load(weights_only=True)``); nothing is unpickled beyond that.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from orsanet.weight_loading import CheckpointError, load_weights
from orsanet.models import MCM_DEPTHS, ORSANet, ORSANetConfig

log = logging.getLogger(__name__)

# Official key prefix -> our key prefix, for every part the forward pass uses.
OFFICIAL_TO_ORSANET = (
    ("ir_back.input_layer.", "image_backbone.trunk.input_layer."),
    ("ir_back.body.", "image_backbone.trunk.body."),
    ("ir_layer.", "image_backbone.token_proj."),
    ("face_landback.", "landmark_source.extractor.network."),
    ("face_segment.backbone.0.", "parsing_source.extractor.features."),
    ("seg_sample.", "parsing_source.adapter."),
    ("seg_fusion.", "ssgm."),
    ("pyramid_fuse.", "mcm."),
    ("se_block.", "se_gate."),
    ("head.linear.", "head."),
)
# Official keys the forward pass never reads, and why.
UNUSED_OFFICIAL_PREFIXES = (
    ("ir_back.output_layer.", "IR-50 face-embedding head"),
    ("face_segment.backbone.1.", "Swin-B final norm (the prior is taken before it)"),
    ("face_segment.face_decoder.", "SegFace decoder"),
    ("face_segment.linear_c.", "SegFace decoder"),
    ("face_segment.linear_fuse.", "SegFace decoder"),
    ("face_segment.pe_layer.", "SegFace decoder"),
    ("pyramid_fuse.cls_token", "MCM class token (never used)"),
)


@dataclass
class ConversionReport:
    mapped: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> keys

    def summary(self) -> str:
        lines = [f"mapped {self.mapped} keys"]
        for reason, keys in self.skipped.items():
            lines.append(f"skipped {len(keys)} unused keys: {reason} (e.g. {keys[0]})")
        return "\n".join(lines)


def read_torch_state(path: str | os.PathLike, container_keys: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth``/``.pt``/``.tar`` file: a bare state dict or one inside ``container_keys``.

    A ``module.`` prefix (DataParallel / DDP) is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a bad or non-tensor file
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: cannot be read as a PyTorch state dict ({first_line})") from None
    if isinstance(content, dict):
        for key in container_keys:
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not all(isinstance(v, torch.Tensor) for v in content.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors"
                              + (f" (or one under {', '.join(container_keys)})" if container_keys else ""))
    return {key.removeprefix("module."): value for key, value in content.items()}


def map_official_keys(official: dict[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename official keys to ours; unused keys are skipped and reported, unknown keys are an error."""
    mapped, report, unknown = {}, ConversionReport(), []
    for key, value in official.items():
        reason = next((why for prefix, why in UNUSED_OFFICIAL_PREFIXES if key.startswith(prefix)), None)
        if reason is not None:
            report.skipped.setdefault(reason, []).append(key)
            continue
        target = next((ours + key[len(theirs):] for theirs, ours in OFFICIAL_TO_ORSANET if key.startswith(theirs)), None)
        if target is None:
            unknown.append(key)
        else:
            mapped[target] = value
    if unknown:
        raise CheckpointError(f"{source}: {len(unknown)} keys not in the official ORSANet layout, "
                              f"e.g. {', '.join(unknown[:3])}")
    report.mapped = len(mapped)
    return mapped, report


def infer_official_shape(official: dict[str, torch.Tensor]) -> tuple[int | None, str | None]:
    """(number of classes, size) that an official state dict was trained with, where visible."""
    head = official.get("head.linear.weight")
    blocks = {int(key.split(".")[2]) for key in official if key.startswith("pyramid_fuse.blocks.")}
    depth = max(blocks) + 1 if blocks else None
    size = next((name for name, d in MCM_DEPTHS.items() if d == depth), None)
    return (int(head.shape[0]) if head is not None else None), size


def convert_official(source: str | os.PathLike, num_classes: int, size: str = "large",
                     label_names: list[str] | None = None) -> tuple[ORSANet, ConversionReport]:
    """Load an official checkpoint (training file or bare state dict) into our paper-configuration model."""
    official = read_torch_state(source, ("model_state_dict", "state_dict"))
    found_classes, found_size = infer_official_shape(official)
    if found_classes is not None and found_classes != num_classes:
        raise CheckpointError(f"{source}: the checkpoint has {found_classes} classes, --num-classes says {num_classes}")
    if found_size is not None and found_size != size:
        raise CheckpointError(f"{source}: the checkpoint is ORSANet-{found_size}, --size says {size}")
    state, report = map_official_keys(official, str(source))
    model = ORSANet(ORSANetConfig(num_classes=num_classes, size=size), label_names)
    load_weights(model, state, str(source))
    return model.eval(), report


def load_component(model: ORSANet, path: str | os.PathLike, target_prefix: str, source_prefix: str = "",
                   container_keys: tuple[str, ...] = ()) -> list[str]:
    """Load one pretrained component file into the part of ``model`` under ``target_prefix``.

    Every model key under the prefix must be found with the same shape; keys of the file that the
    model does not use are returned (for the log).
    """
    state = read_torch_state(path, container_keys)
    expected = {key[len(target_prefix):] for key in model.state_dict() if key.startswith(target_prefix)}
    loaded = {key[len(source_prefix):]: value for key, value in state.items()
              if key.startswith(source_prefix) and key[len(source_prefix):] in expected}
    load_weights(model, loaded, str(path), prefix=target_prefix)
    return [key for key in state if not (key.startswith(source_prefix) and key[len(source_prefix):] in expected)]


def assemble_from_components(ir50: str | os.PathLike, mobilefacenet: str | os.PathLike,
                             segface: str | os.PathLike, num_classes: int, size: str = "large",
                             label_names: list[str] | None = None) -> ORSANet:
    """An untrained paper model whose backbone and priors come from the authors' pretrained files.

    ``ir50.pth`` (plain state dict), ``mobilefacenet_model_best.pth.tar`` (``{'state_dict': ...}``)
    and SegFace's ``model_299.pt`` (``{'state_dict_backbone': ...}``). The fusion modules and head
    keep their random initialisation, ready for fine-tuning.
    """
    model = ORSANet(ORSANetConfig(num_classes=num_classes, size=size), label_names)
    for path, target, source, containers in (
        (ir50, "image_backbone.trunk.", "", ()),
        (mobilefacenet, "landmark_source.extractor.network.", "", ("state_dict",)),
        (segface, "parsing_source.extractor.features.", "backbone.0.", ("state_dict_backbone", "state_dict")),
    ):
        unused = load_component(model, path, target, source, containers)
        if unused:
            log.info("%s: %d keys not used by ORSANet (e.g. %s)", path, len(unused), unused[0])
    return model
