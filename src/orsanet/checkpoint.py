"""orsanet's model file format: safetensors weights with JSON metadata in the same file.

The metadata (safetensors header, key ``"orsanet"``) holds::

    {"format": "orsanet", "format_version": 1,
     "config": {...ORSANetConfig...}, "label_names": [...],
     "preprocessing": {"input_size": 224, "mean": [...], "std": [...], ...},
     "metrics": {...}, "provenance": {...}}

Models are built from the config first and the weights are loaded as a separate step;
nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from orsanet.fileio import atomic_path
from orsanet.models import ORSANet, ORSANetConfig

FORMAT_NAME = "orsanet"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MODEL_PATH = Path(__file__).parent / "weights" / "default.safetensors"


class CheckpointError(ValueError):
    """A model file that cannot be read or does not fit the model it describes."""


def default_preprocessing(input_size: int = 224) -> dict:
    """The input contract of the paper configuration: RGB face crops, resized, ImageNet-normalised."""
    return {"input_size": input_size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
            "color": "rgb", "interpolation": "bilinear"}


@dataclass
class ModelMetadata:
    config: ORSANetConfig
    label_names: list[str]
    preprocessing: dict = field(default_factory=default_preprocessing)
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                           "config": self.config.to_dict(), "label_names": self.label_names,
                           "preprocessing": self.preprocessing, "metrics": self.metrics,
                           "provenance": self.provenance}, sort_keys=True)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """``"default"`` names the model shipped inside the package; anything else is a file path."""
    if str(path) == "default":
        if not DEFAULT_MODEL_PATH.exists():
            raise CheckpointError(f"{DEFAULT_MODEL_PATH}: the default model is not included in this installation")
        return DEFAULT_MODEL_PATH
    return Path(path)


def save_model(path: str | os.PathLike, model: ORSANet, label_names: list[str] | None = None,
               preprocessing: dict | None = None, metrics: dict | None = None,
               provenance: dict | None = None) -> Path:
    """Write ``model`` (weights + metadata) atomically to ``path`` and return the path."""
    label_names = list(label_names or model.label_names or [])
    if len(label_names) != model.config.num_classes:
        raise CheckpointError(f"{path}: {len(label_names)} label names for {model.config.num_classes} classes")
    metadata = ModelMetadata(model.config, label_names, preprocessing or default_preprocessing(model.config.input_size),
                             metrics or {}, provenance or {})
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata={FORMAT_NAME: metadata.to_json()})
    return Path(path)


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Read only the metadata of a model file (fast: the weights are not loaded)."""
    path = resolve_model_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(FORMAT_NAME)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: not a safetensors model file ({error})") from None
    if raw is None:
        raise CheckpointError(f"{path}: safetensors file without orsanet metadata "
                              "(official .pth checkpoints need 'orsanet convert-official' first)")
    values = json.loads(raw)
    if values.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {values['format_version']} is newer than this orsanet reads")
    try:
        config = ORSANetConfig.from_dict(values["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad model config in metadata ({error})") from None
    return ModelMetadata(config, values["label_names"], values.get("preprocessing", default_preprocessing()),
                         values.get("metrics", {}), values.get("provenance", {}))


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a one-line CheckpointError naming ``source`` on any missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing:
        raise CheckpointError(f"{source}: {len(missing)} missing keys, e.g. {', '.join(missing[:3])}")
    if unexpected:
        raise CheckpointError(f"{source}: {len(unexpected)} unexpected keys, e.g. {', '.join(unexpected[:3])}")
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(f"{source}: shape mismatch for {key}: file has {tuple(state[key].shape)}, "
                                  f"model expects {tuple(value.shape)}")


def load_model(path: str | os.PathLike = "default", device: str | torch.device = "cpu") -> ORSANet:
    """Build the model a file describes, load its weights and return it in eval mode.

    The model carries ``label_names``, ``preprocessing`` and ``metadata`` from the file.
    """
    path = resolve_model_path(path)
    metadata = read_metadata(path)
    model = ORSANet(metadata.config, metadata.label_names)
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    check_state_dict(model, state, str(path))
    model.load_state_dict(state)
    model.preprocessing = metadata.preprocessing
    model.metadata = metadata
    return model.to(device).eval()
