"""Training configuration: YAML files with dotted ``--set key=value`` overrides.

A config has six sections (see ``configs/*.yaml``)::

    model:    ORSANetConfig fields (num_classes comes from the data), plus ``init``: a model file to start
              from (the same architecture, or one trained without SSGM/MCM, whose prior branches start fresh),
              and ``pretrained_backbone: true``: the image backbone starts from its shipped face-recognition weights
    data:     which dataset, where, which splits and label protocol
    optim:    ``recipe: official`` (SAM over Adam, ExponentialLR) or ``recipe: adamw_cosine``
    loss:     the objective (label-smoothing warm-up, DARE weight and form)
    augment:  flip and RandomErasing
    run:      output folder, seed, device, mixed precision, prior cache, limits for quick runs
"""

from __future__ import annotations

import math
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
    color: str = "auto"  # the model's input colour: auto (grey for grey datasets), rgb or gray


@dataclass
class OptimConfig:
    recipe: str = "official"  # official | adamw_cosine
    lr: float = 1e-5
    weight_decay: float = 0.0
    sam_rho: float = 0.05
    gamma: float = 0.98  # ExponentialLR, per epoch (official)
    warmup_epochs: int = 0  # linear warm-up for adamw_cosine
    pretrained_lr_scale: float = 1.0  # adamw_cosine: lr factor of a pretrained image trunk (model.pretrained_backbone)
    init_lr_scale: float = 1.0  # adamw_cosine: lr factor of the weights model.init loaded (fresh ones: 1)
    # Batch-norm running statistics stop updating after this many epochs (0: from the start, for a model
    # that starts from ``model.init``); the layers' scales and shifts still learn. None: they never stop.
    freeze_batchnorm_after: int | None = None
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
    image_dropout: float = 0.0  # this fraction of faces reach the network as a blank image with the priors measured
    # on their pixels, so that the prior paths learn to carry the expression where the pixels cannot
    # orsanet.occlusion generators per batch (realistic occluders, squares, regions), masks handed to the priors:
    occlusion_kinds: dict = field(default_factory=dict)  # kind or group -> weight; {} with p > 0: the default mix
    occlusion_p: float = 0.0  # share of faces occluded
    occlusion_area: tuple[float, float] = (0.1, 0.4)  # area range of the kinds that take one (squares)


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
    compile: bool = False  # train (and validate) through torch.compile; the weights stay those of the plain model


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


# Values that must be positive (> 0) or at least 0, by dotted key.
POSITIVE = {"optim.lr", "optim.batch_size", "optim.epochs", "optim.gamma", "loss.smoothing_weight",
            "model.dim", "model.num_heads", "model.input_size", "model.num_classes", "model.mlp_ratio",
            "run.max_train_batches", "run.max_eval_batches", "run.threads", "run.max_minutes"}
NON_NEGATIVE = {"optim.weight_decay", "optim.sam_rho", "optim.pretrained_lr_scale", "optim.init_lr_scale",
                "optim.warmup_epochs", "optim.freeze_batchnorm_after", "loss.warmup_epochs", "loss.smoothing",
                "loss.dare_weight", "data.num_workers", "data.valid_fraction", "augment.erasing_p",
                "augment.rotation", "augment.shift", "augment.prior_dropout", "augment.image_dropout",
                "augment.occlusion_p", "model.drop_path"}
CHOICES = {"data.color": ("auto", "rgb", "gray"), "loss.dare_form": ("additive", "multiplicative"),
           "run.select_metric": ("accuracy", "mean_class_accuracy", "macro_f1")}


def check_value(key: str, value, annotation: str):
    """``value`` as the type ``annotation`` names (ints for floats, lists for tuples), or a one-line ConfigError."""
    optional = "None" in annotation
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key}: a value is required")
    base = annotation.replace("| None", "").strip()

    def wrong(expected: str):
        return ConfigError(f"{key}: expected {expected}, got {value!r}")

    if base == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false")
    elif base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise wrong("a number")
        value = float(value)
    elif base == "str":
        if not isinstance(value, str):
            raise wrong("a string")
    elif base.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise wrong("two numbers, e.g. [0.9, 1.1]")
        value = tuple(float(v) for v in value)
    elif base == "dict":
        if not isinstance(value, dict):
            raise wrong("a mapping")
    if key in POSITIVE and not value > 0:
        raise ConfigError(f"{key}: must be positive, got {value!r}")
    if key in NON_NEGATIVE and (value < 0 if not isinstance(value, tuple) else min(value) < 0):
        raise ConfigError(f"{key}: must not be negative, got {value!r}")
    if CHOICES.get(key) and value not in CHOICES[key]:
        raise ConfigError(f"{key}: must be one of {', '.join(CHOICES[key])}, got {value!r}")
    return value


def _build(cls, values, where: str, prefix: str = ""):
    """A config dataclass from a mapping; ``prefix`` is the dotted section (``"optim."``)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {prefix.rstrip('.') or 'config'}: expected a section (key: value lines), "
                          f"got {values!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(prefix + u for u in unknown)} "
                          f"(known: {', '.join(known)})")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        if is_dataclass(default):
            kwargs[name] = _build(type(default), value or {}, where, f"{prefix}{name}.")
            continue
        try:
            kwargs[name] = check_value(prefix + name, value, str(known[name].type))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    return cls(**kwargs)


def model_config(values: dict, num_classes: int | None = None):
    """The ``model`` section (ORSANetConfig fields, plus ``init`` and ``pretrained_backbone``) ->
    ORSANetConfig, or a one-line ConfigError."""
    from orsanet.models import ORSANetConfig

    known = {f.name: f for f in fields(ORSANetConfig)}
    starts = {"init", "pretrained_backbone"}  # how the weights start, not part of the architecture
    unknown = sorted(set(values) - set(known) - starts)
    if unknown:
        raise ConfigError(f"model: unknown keys {', '.join(unknown)} (known: {', '.join(sorted(starts))}, "
                          f"{', '.join(known)})")
    checked = {name: check_value(f"model.{name}", value, str(known[name].type))
               for name, value in values.items() if name not in starts}
    if "init" in values and not isinstance(values["init"], (str, type(None))):
        raise ConfigError(f"model.init: expected a model file, got {values['init']!r}")
    if not isinstance(values.get("pretrained_backbone", False), bool):
        raise ConfigError(f"model.pretrained_backbone: expected true or false, got {values['pretrained_backbone']!r}")
    checked["num_classes"] = num_classes or checked.get("num_classes", 7)
    try:
        return ORSANetConfig(**checked)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from None


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``"optim.lr: 0.001 -> 0.0003"`` for every key whose value differs between two config dicts."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_differences(a, b, f"{prefix}{key}.")
        elif (list(a) if isinstance(a, tuple) else a) != (list(b) if isinstance(b, tuple) else b):
            changes.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changes


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
    for section, body in values.items():
        if body is not None and not isinstance(body, dict):
            raise ConfigError(f"{section}: expected a section (key: value lines), got {body!r}")
    optim = values.setdefault("optim", {}) or {}
    recipe = optim.get("recipe", "official")
    if recipe not in RECIPES:
        raise ConfigError(f"{path or 'config'}: optim.recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    values["optim"] = {**RECIPES[recipe], **optim}
    config = _build(TrainConfig, values, str(path or "config"))
    try:
        model_config(config.model)  # a typo in the model section is reported now, not as a traceback later
    except ConfigError as error:
        raise ConfigError(f"{path or 'config'}: {error}") from None
    return config
