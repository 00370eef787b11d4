"""Training configuration: YAML files with dotted ``--set key=value`` overrides.

A config has six sections (see ``configs/*.yaml``)::

    model:    ORSANetConfig fields (num_classes comes from the data), plus ``init``: a model file to start
              from (the same architecture, or one trained without SSGM/MCM, whose prior branches start fresh)
    data:     which dataset, where, which splits and label protocol
    optim:    ``recipe: official`` (SAM over Adam, ExponentialLR) or ``recipe: adamw_cosine``
    loss:     the objective (label-smoothing warm-up, DARE weight and form)
    augment:  flip and RandomErasing
    run:      output folder, seed, device, mixed precision, prior cache, limits for quick runs
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml


@dataclass
class DataConfig:
    kind: str = "folder"
    root: str = ""
    train_split: str = "train"
    valid_split: str | None = "valid"  # None: carve a stratified split from train
    test_split: str | None = "test"
    valid_fraction: float = 0.1
    label_mode: str = "majority"  # FERPlus: majority, argmax or probability
    train_vote_targets: bool = False  # FERPlus: train on the kept images' vote distributions (soft targets)
    subset: str | None = None
    num_workers: int = 2


@dataclass
class OptimConfig:
    recipe: str = "official"  # official | adamw_cosine
    lr: float = 1e-5
    weight_decay: float = 0.0
    sam_rho: float = 0.05
    gamma: float = 0.98  # ExponentialLR, per epoch (official)
    warmup_epochs: int = 0  # linear warm-up for adamw_cosine
    batch_size: int = 20
    epochs: int = 400
    balanced_sampler: bool = True


@dataclass
class LossConfig:
    warmup_epochs: int = 5
    smoothing: float = 0.2
    smoothing_weight: float = 2.0
    dare_weight: float = 0.1
    dare_form: str = "additive"
    use_dare: bool = True


@dataclass
class AugmentConfig:
    flip: bool = True
    erasing_p: float = 0.5
    erasing_scale: tuple[float, float] = (0.02, 0.1)
    # Batch-level geometry, used with mesh priors (the same warp moves the cached mesh points):
    rotation: float = 0.0  # degrees, uniform in [-rotation, rotation]
    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0  # fraction of the crop, uniform in [-shift, shift] per axis
    prior_dropout: float = 0.0  # mesh priors: treat this fraction of faces as unfitted (the mesh fails under occlusion)


@dataclass
class RunConfig:
    output_dir: str = "runs/orsanet"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA only
    select_metric: str = "accuracy"  # or mean_class_accuracy, macro_f1 (on the validation split)
    max_train_batches: int | None = None  # for smoke runs
    max_eval_batches: int | None = None
    threads: int | None = None
    prior_cache: str = "~/.cache/orsanet/priors"  # face-mesh points of each dataset, computed once
    max_minutes: float | None = None  # time budget: stop after the epoch that would overrun it
    channels_last: bool = True


@dataclass
class TrainConfig:
    model: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)


RECIPES = {
    "official": {},
    "adamw_cosine": {"lr": 3e-4, "weight_decay": 0.05, "warmup_epochs": 2, "batch_size": 64, "epochs": 40},
}


class ConfigError(ValueError):
    """A bad config file or override, reported in one line."""


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)} (known: {', '.join(known)})")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        kwargs[name] = _build(type(default), value or {}, f"{where}.{name}") if is_dataclass(default) else value
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], object]:
    """``"optim.lr=1e-4"`` -> (["optim", "lr"], 0.0001); values are read as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected key=value")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a YAML config, apply the recipe's defaults, then the ``--set`` overrides."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping of sections")
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: {key} is not a section")
        node[keys[-1]] = value
    optim = values.setdefault("optim", {}) or {}
    recipe = optim.get("recipe", "official")
    if recipe not in RECIPES:
        raise ConfigError(f"{path or 'config'}: optim.recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    values["optim"] = {**RECIPES[recipe], **optim}
    return _build(TrainConfig, values, str(path or "config"))
