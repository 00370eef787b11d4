"""orsanet's model file format: safetensors weights with JSON metadata in the same file.

The metadata (safetensors header, key ``"orsanet"``) holds::

    {"format": "orsanet", "format_version": 1,
     "config": {...ORSANetConfig...}, "label_names": [...],
     "preprocessing": {...the input contract, orsanet.contract.InputContract...},
     "metrics": {...}, "provenance": {...}}

Models are built from the config first and the weights are loaded as a separate step
(``orsanet.weight_loading.load_weights``); nothing is ever unpickled. Every problem with a file is a
one-line ``CheckpointError`` naming it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from orsanet.contract import ContractError, InputContract
from orsanet.fileio import atomic_path
from orsanet.models import ORSANet, ORSANetConfig
from orsanet.weight_loading import CheckpointError, load_weights

FORMAT_NAME = "orsanet"
FORMAT_VERSION = 1
DEFAULT_MODEL_PATH = Path(__file__).parent / "weights" / "default.safetensors"


@dataclass
class ModelMetadata:
    config: ORSANetConfig
    label_names: list[str]
    contract: InputContract = field(default_factory=InputContract)
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                           "config": self.config.to_dict(), "label_names": self.label_names,
                           "preprocessing": self.contract.to_dict(), "metrics": self.metrics,
                           "provenance": self.provenance}, sort_keys=True)


def resolve_model_path(path: str | os.PathLike) -> Path:
    """``"default"`` names the model shipped inside the package; anything else is a file path."""
    if str(path) == "default":
        if not DEFAULT_MODEL_PATH.exists():
            raise CheckpointError(f"{DEFAULT_MODEL_PATH}: the default model is not included in this installation")
        return DEFAULT_MODEL_PATH
    return Path(path)


def save_model(path: str | os.PathLike, model: ORSANet, label_names: list[str] | None = None,
               contract: InputContract | None = None, metrics: dict | None = None,
               provenance: dict | None = None) -> Path:
    """Write ``model`` (weights + metadata) atomically to ``path`` and return the path.

    ``contract`` defaults to the model's own (a loaded model), else RGB at the config's input size."""
    label_names = list(label_names or model.label_names or [])
    if len(label_names) != model.config.num_classes:
        raise CheckpointError(f"{path}: {len(label_names)} label names for {model.config.num_classes} classes")
    contract = contract or getattr(model, "contract", None) or InputContract(model.config.input_size)
    metadata = ModelMetadata(model.config, label_names, contract, metrics or {}, provenance or {})
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
    try:
        values = json.loads(raw)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({error.msg})") from None
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: metadata must be a JSON object")
    if not isinstance(values.get("format_version", 0), int) or values.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {values.get('format_version')!r} is not one this orsanet reads")
    try:
        config = ORSANetConfig.from_dict(values["config"])
    except KeyError:
        raise CheckpointError(f"{path}: metadata has no model config") from None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: bad model config in metadata ({error})") from None
    labels = values.get("label_names")
    if not isinstance(labels, list) or not all(isinstance(name, str) and name for name in labels):
        raise CheckpointError(f"{path}: label_names must be a list of names, got {labels!r}")
    if len(labels) != config.num_classes:
        raise CheckpointError(f"{path}: {len(labels)} label names for a {config.num_classes}-class model")
    if "preprocessing" not in values:
        raise CheckpointError(f"{path}: metadata has no preprocessing block (the model's input contract)")
    try:
        contract = InputContract.from_dict(values["preprocessing"])
    except (ContractError, TypeError) as error:
        raise CheckpointError(f"{path}: bad preprocessing in metadata ({error})") from None
    if contract.input_size != config.input_size:
        raise CheckpointError(f"{path}: preprocessing input_size {contract.input_size} differs from the model's "
                              f"{config.input_size}")
    return ModelMetadata(config, labels, contract, values.get("metrics", {}), values.get("provenance", {}))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (on the CPU)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: cannot read the weights ({error})") from None


def load_model(path: str | os.PathLike = "default", device: str | torch.device = "cpu") -> ORSANet:
    """Build the model a file describes, load its weights (strictly) and return it in eval mode.

    The model carries ``label_names``, ``contract`` (its input contract) and ``metadata`` from the file.
    """
    path = resolve_model_path(path)
    metadata = read_metadata(path)
    model = ORSANet(metadata.config, metadata.label_names)
    load_weights(model, read_weights(path), str(path))
    model.contract = metadata.contract
    model.metadata = metadata
    return model.to(device).eval()
