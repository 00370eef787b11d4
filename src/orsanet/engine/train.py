"""``orsanet train``: the training loop with honest model selection and exact resumption.

Per epoch: train (class-balanced sampling, SAM or AdamW), validate, write ``last.safetensors``,
``best.safetensors`` (chosen on the validation split only) and ``train_state.pt`` atomically, and
the metrics log (``metrics.jsonl``, ``metrics.csv``, ``curves.png``). After the last epoch the best
model is evaluated once on the test split (``test_report.json``). ``--resume`` restarts from the
last completed epoch with the model, optimiser, scheduler, sampler position and random state.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import random
import signal
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from tqdm import tqdm

from orsanet.checkpoint import load_model, save_model
from orsanet.contract import InputContract
from orsanet.engine.batches import BatchAugment, PriorDataset, blank_faces, split_batch, warps
from orsanet.engine.config import ConfigError, TrainConfig, config_differences, model_config
from orsanet.engine.distributed import DistributedContext, init_distributed, resolve_device
from orsanet.engine.sam import SAM
from orsanet.face_model import FaceModel
from orsanet.fileio import atomic_path, write_text_atomic
from orsanet.losses import ORSANetObjective, soft_cross_entropy
from orsanet.models import ORSANet
from orsanet.transforms import train_transform
from orsanet.weight_loading import load_weights

log = logging.getLogger(__name__)

# ORSANet modules a model trained without priors lacks; ``model.init`` from such a model leaves them fresh.
PRIOR_BRANCHES = ("parsing_source.", "ssgm.", "landmark_source.", "mcm.")
STATE_FILE = "train_state.pt"


class EpochSampler(Sampler[int]):
    """Class-balanced (or plain shuffled) sampling whose order depends only on ``(seed, epoch)``.

    Balanced: each class is drawn with equal probability (with replacement), ``len(labels)`` draws
    per epoch. Under DDP each process takes every ``world_size``-th index of the same order.
    """

    def __init__(self, labels: list[int], seed: int, balanced: bool = True, rank: int = 0, world_size: int = 1):
        self.labels = torch.as_tensor(labels)
        self.seed, self.balanced, self.rank, self.world_size = seed, balanced, rank, world_size
        self.epoch = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.labels)
        if self.balanced:
            counts = torch.bincount(self.labels).clamp(min=1).float()
            indices = torch.multinomial(1.0 / counts[self.labels], n, replacement=True, generator=generator)
        else:
            indices = torch.randperm(n, generator=generator)
        padded = math.ceil(n / self.world_size) * self.world_size
        return torch.cat([indices, indices[: padded - n]])[self.rank::self.world_size]

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.world_size)


def hard_labels(dataset: Dataset, indices: list[int] | None = None) -> list[int]:
    """Integer class of every sample (argmax for soft targets)."""
    labels = []
    for i in indices if indices is not None else range(len(dataset.samples)):
        label = dataset.samples[i][1]
        labels.append(int(torch.as_tensor(label).argmax()) if torch.as_tensor(label).dim() else int(label))
    return labels


GREY_KINDS = ("ferplus", "fer2013")  # datasets whose faces are grey
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def training_contract(config: TrainConfig, input_size: int, train) -> InputContract:
    """The input contract a run trains (and records) its model with: ``data.color`` (``auto``: grey for
    grey datasets, judged by their kind or by the first images of the opened ``train`` split), the image
    backbone's mean/std (ImageNet's unless it was pretrained with others), bilinear."""
    from orsanet.models.image_backbone import backbone_normalisation

    color = config.data.color
    if color == "auto":
        color = "gray" if config.data.kind in GREY_KINDS else _file_color(train)
    mean, std = backbone_normalisation(config.model.get("image_backbone", "ir50"))
    return InputContract(input_size=input_size, color=color, mean=mean, std=std)


def _file_color(dataset) -> str:
    """``gray`` when the first images of a split are single-channel files, else ``rgb``."""
    from PIL import Image

    modes = []
    for path, _ in dataset.samples[:8]:
        try:
            with Image.open(path) as image:
                modes.append(image.mode)
        except (OSError, ValueError, TypeError):
            continue
    return "gray" if modes and all(mode in GREY_MODES for mode in modes) else "rgb"


def build_splits(config: TrainConfig, input_size: int, per_image_augment: bool = True):
    """(train, valid, test-or-None) datasets of contract pixels, and the contract (``training_contract``,
    judged on the train split opened here).

    ``per_image_augment``: the train split gets the official flip and RandomErasing per image; otherwise
    augmentation happens per batch (``BatchAugment``). ``data.subset`` restricts the test split only.
    """
    from orsanet.data import open_dataset, stratified_split

    data, augment = config.data, config.augment

    def open_split(split, subset=None, vote_targets=False):
        return open_dataset(data.kind, data.root, split, label_mode=data.label_mode, subset=subset,
                            vote_targets=vote_targets)

    train = open_split(data.train_split, vote_targets=data.train_vote_targets)
    contract = training_contract(config, input_size, train)
    train.transform = (train_transform(contract, augment.flip, augment.erasing_p, tuple(augment.erasing_scale))
                       if per_image_augment else contract.pixels)
    if data.valid_split:
        valid = open_split(data.valid_split)
    else:  # no official validation split (RAF-DB): carve one, stratified and seeded
        train_idx, valid_idx = stratified_split(hard_labels(train), data.valid_fraction, seed=config.run.seed)
        valid = Subset(open_split(data.train_split), valid_idx)
        train = Subset(train, train_idx)
        log.info("validation: %d images carved (stratified, seed %d) from %s/%s", len(valid_idx), config.run.seed,
                 data.kind, data.train_split)
    test = open_split(data.test_split, data.subset) if data.test_split else None
    for split in (valid, test):
        if split is not None:
            _base(split).transform = contract.pixels
    return train, valid, test, contract


def _base(dataset: Dataset) -> Dataset:
    """The FaceDataset under a Subset and/or MeshPriorDataset wrapper."""
    while not hasattr(dataset, "samples"):
        dataset = dataset.dataset
    return dataset


def _labels_of(dataset: Dataset) -> list[int]:
    if not hasattr(dataset, "samples") and not isinstance(dataset, Subset):
        dataset = dataset.dataset  # MeshPriorDataset
    if isinstance(dataset, Subset):
        return hard_labels(dataset.dataset, list(dataset.indices))
    return hard_labels(dataset)


def build_optimizer(model: torch.nn.Module, config: TrainConfig, lr_scales: dict[str, float] | None = None):
    """(optimizer, per-epoch scheduler, uses_sam) for the configured recipe.

    ``lr_scales``: parameter name -> factor of ``optim.lr`` under ``adamw_cosine`` (trained weights
    move more slowly than the layers that start fresh); absent names learn at the full rate.
    """
    optim = config.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if optim.recipe == "official":
        optimizer = SAM(params, torch.optim.Adam, rho=optim.sam_rho, lr=optim.lr, weight_decay=optim.weight_decay)
        return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=optim.gamma), True
    scale_of = {id(p): (lr_scales or {}).get(name, 1.0) for name, p in model.named_parameters()}
    if any(scale != 1.0 for scale in scale_of.values()):
        params = [{"params": [p for p in params if scale_of[id(p)] == scale], "lr": optim.lr * scale}
                  for scale in sorted({scale_of[id(p)] for p in params})]
    optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    warmup, total = optim.warmup_epochs, optim.epochs

    def factor(epoch_index: int) -> float:  # epoch_index counts completed epochs
        if epoch_index < warmup:
            return (epoch_index + 1) / (warmup + 1)
        progress = (epoch_index - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor), False


def initialise_from(model: torch.nn.Module, path: str | Path, label_names: list[str]) -> list[str]:
    """Load a model file's weights into ``model``; its prior branches may differ. Returns the keys left fresh.

    A branch of ``PRIOR_BRANCHES`` that the file lacks (a backbone trained alone), that ``model``
    lacks (a backbone-only model from a full one), or whose tensors do not fit (other prior
    sources, e.g. mesh maps replaced by the occlusion-aware network's) starts fresh; everything
    else must fit exactly.
    """
    source = load_model(path)
    if list(source.label_names) != list(label_names):
        raise ConfigError(f"model.init: {path}: labels {source.label_names} differ from the data's {label_names}")
    state, target = source.state_dict(), model.state_dict()
    misfits = sorted({branch for key, value in state.items() for branch in PRIOR_BRANCHES if key.startswith(branch)
                      and (key not in target or tuple(target[key].shape) != tuple(value.shape))})
    fresh = load_weights(model, state, str(path), fresh=PRIOR_BRANCHES, ignore=misfits)
    if fresh or misfits:
        log.info("initialised from %s; %s start fresh (%d tensors)%s", path,
                 "/".join(sorted({key.split('.')[0] for key in fresh})) or "no branches", len(fresh),
                 f"; its {'/'.join(branch.rstrip('.') for branch in misfits)} did not fit and were dropped"
                 if misfits else "")
    else:
        log.info("initialised from %s", path)
    return fresh


class Trainer:
    """Holds everything one run needs; ``fit()`` runs the epochs."""

    def __init__(self, config: TrainConfig, resume: bool = False, allow_config_change: bool = False) -> None:
        self.config = config
        self.allow_config_change = allow_config_change
        run = config.run
        if run.threads:
            torch.set_num_threads(run.threads)
        self.device = resolve_device(run.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist: DistributedContext = init_distributed(self.device)
        self.output = Path(run.output_dir)
        if self.dist.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(run.seed)
        random.seed(run.seed)

        planned = model_config(config.model)  # the class count comes from the data below
        augment = config.augment
        if augment.image_dropout > 0 and planned.prior_backend is None:
            raise ConfigError("augment.image_dropout: this model reads no priors, "
                              "so a blanked face would carry nothing")
        batch_level = (planned.prior_backend is not None or warps(augment.rotation, augment.scale, augment.shift)
                       or augment.occlusion_p > 0)
        self.train_set, self.valid_set, self.test_set, self.contract = build_splits(config, planned.input_size,
                                                                                    not batch_level)
        log.info("input contract: %s", self.contract.to_dict())
        self.label_names = list(_base(self.train_set).label_names)
        self.model = ORSANet(model_config(config.model, len(self.label_names)), self.label_names)
        lr_scales: dict[str, float] = {}  # parameters that start from trained weights learn more slowly
        if config.model.get("pretrained_backbone"):
            load_pretrained = getattr(self.model.image_backbone, "load_pretrained", None)
            if load_pretrained is None:
                raise ConfigError(f"model.pretrained_backbone: {config.model.get('image_backbone')} ships no weights")
            load_pretrained()
            log.info("image backbone starts from its face-recognition weights")
            # its batch norms are folded away, so full-rate steps wreck it within an epoch
            for name, _ in getattr(self.model.image_backbone, "trunk", torch.nn.Module()).named_parameters():
                lr_scales[f"image_backbone.trunk.{name}"] = config.optim.pretrained_lr_scale
        if config.model.get("init"):
            fresh = set(initialise_from(self.model, config.model["init"], self.label_names))
            for name, _ in self.model.named_parameters():
                if name not in fresh:
                    lr_scales[name] = lr_scales.get(name, 1.0) * config.optim.init_lr_scale
        self.model.to(self.device)
        if run.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.face = FaceModel(self.model, self.contract)
        if self.face.priors is not None:
            self._attach_priors()
        self.augment = self._batch_augment() if batch_level else None
        self.objective = ORSANetObjective(config.loss.dare_weight, config.loss.smoothing_weight, config.loss.smoothing,
                                          config.loss.warmup_epochs, config.loss.dare_form, config.loss.use_dare)
        self.optimizer, self.scheduler, self.uses_sam = build_optimizer(self.model, config, lr_scales)
        self.amp_dtype = None
        if run.amp and self.device.type == "cuda":
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.network = self.model
        if self.dist.enabled:
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if run.compile:  # compiled graphs share the parameters: checkpoints and the optimiser see the plain model
            self.network = torch.compile(self.network)
        self.sampler = EpochSampler(_labels_of(self.train_set), run.seed, config.optim.balanced_sampler,
                                    self.dist.rank, self.dist.world_size)
        self.start_epoch, self.history = 1, []
        self.best = {"metric": run.select_metric, "value": -1.0, "epoch": 0}
        if resume:
            self._resume()

    def _attach_priors(self) -> None:
        """Wrap every split with its cached prior geometry (measured on the same contract pixels)."""
        from orsanet.priors.cache import cached_geometry

        cache_dir = Path(self.config.run.prior_cache).expanduser()
        backend = self.face.priors
        if backend.live:  # measured in every step on the augmented pixels (FaceModel.inputs)
            return

        def wrap(dataset):
            if dataset is None:
                return None
            base = _base(dataset)
            if self.dist.is_main:
                geometry = cached_geometry(base, backend, self.contract, cache_dir)
            self.dist.barrier()
            if not self.dist.is_main:
                geometry = cached_geometry(base, backend, self.contract, cache_dir, progress=False)
            if isinstance(dataset, Subset):
                index = torch.as_tensor(list(dataset.indices))
                geometry = {key: value[index] for key, value in geometry.items()}
            return PriorDataset(dataset, geometry)

        self.train_set, self.valid_set, self.test_set = map(wrap, (self.train_set, self.valid_set, self.test_set))

    def _batch_augment(self) -> BatchAugment:
        """Augmentation on whole batches: one warp moves pixels and prior geometry together."""
        augment = self.config.augment
        try:
            return BatchAugment(self.face.priors, flip=augment.flip, rotation=augment.rotation,
                                scale=tuple(augment.scale), shift=augment.shift, occluder_p=augment.erasing_p,
                                occluder_area=tuple(augment.erasing_scale), prior_dropout=augment.prior_dropout,
                                occlusion_kinds=augment.occlusion_kinds, occlusion_p=augment.occlusion_p,
                                occlusion_area=tuple(augment.occlusion_area))
        except (ValueError, ImportError) as error:
            raise ConfigError(f"augment: {error}") from None

    # ----------------------------------------------------------------- state
    def _state(self, epoch: int) -> dict:
        return {"epoch": epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else {},
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
                "best": self.best, "history": self.history, "config_json": json.dumps(self.config.to_dict())}

    def _resume(self) -> None:
        path = self.output / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: nothing to resume (no training state in {self.output})")
        state = torch.load(path, map_location="cpu", weights_only=True)
        changed = config_differences(json.loads(state["config_json"]), self.config.to_dict())
        if changed and not self.allow_config_change:
            raise ConfigError(f"{path}: the config differs from the run's ({'; '.join(changed[:4])}"
                              f"{'; …' if len(changed) > 4 else ''}); pass --allow-config-change to resume anyway")
        if changed:
            log.warning("resuming with a changed config: %s", "; ".join(changed))
        self.model.load_state_dict(state["model"])
        configured = list(self.scheduler.base_lrs)  # the rates this (possibly changed) config asks for
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if changed and isinstance(self.scheduler, torch.optim.lr_scheduler.LambdaLR):
            # from the next epoch on, the rates follow the changed config's schedule, not the old one's
            self.scheduler.base_lrs = configured
            for group, base, factor in zip(self.optimizer.param_groups, configured, self.scheduler.lr_lambdas):
                group["initial_lr"], group["lr"] = base, base * factor(self.scheduler.last_epoch)
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.best, self.history = state["best"], state["history"]
        self.start_epoch = state["epoch"] + 1
        log.info("resumed %s after epoch %d (best %s %.4f at epoch %d)", self.output, state["epoch"],
                 self.best["metric"], self.best["value"], self.best["epoch"])

    # ----------------------------------------------------------------- steps
    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _loss(self, images, priors, targets, epoch):
        with self._autocast():
            logits = self.network(images, **priors).logits
        return self.objective(logits.float(), targets, epoch), logits.detach().float()

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _train_step(self, images, priors, targets, epoch):
        loss, logits = self._loss(images, priors, targets, epoch)
        self._backward(loss)
        if self.uses_sam:
            if self.scaler:  # unscale by hand: SAM needs the true gradient for its ascent step
                inv = 1.0 / self.scaler.get_scale()
                for p in self.model.parameters():
                    if p.grad is not None:
                        p.grad.mul_(inv)
            self.optimizer.first_step(zero_grad=True)
            second_loss, _ = self._loss(images, priors, targets, epoch)
            self._backward(second_loss)
            if self.scaler:
                self.optimizer.restore()
                self.scaler.step(self.optimizer.base_optimizer)  # unscales; skips the step on inf/nan
                self.scaler.update()
                self.optimizer.zero_grad()
            else:
                self.optimizer.second_step(zero_grad=True)
        elif self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad()
        else:
            self.optimizer.step()
            self.optimizer.zero_grad()
        return loss.detach(), logits

    def _loader(self, dataset, shuffle_sampler=None) -> DataLoader:
        workers = self.config.data.num_workers
        return DataLoader(dataset, batch_size=self.config.optim.batch_size, sampler=shuffle_sampler,
                          shuffle=False, num_workers=workers, pin_memory=self.device.type == "cuda",
                          persistent_workers=False, drop_last=shuffle_sampler is not None and len(dataset) >
                          self.config.optim.batch_size)

    def train_epoch(self, epoch: int) -> dict:
        self.network.train()
        freeze = self.config.optim.freeze_batchnorm_after
        if freeze is not None and epoch > freeze:  # occluded training batches keep moving the statistics
            for module in self.network.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        self.sampler.set_epoch(epoch)
        loader = self._loader(self.train_set, self.sampler)
        limit = self.config.run.max_train_batches
        total = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count
        bar = tqdm(loader, total=min(len(loader), limit or len(loader)), desc=f"epoch {epoch} train",
                   disable=not self.dist.is_main, leave=False, dynamic_ncols=True)
        for step, batch in enumerate(bar):
            if limit and step >= limit:
                break
            images, priors, targets = self._prepare(batch, train=True)
            loss, logits = self._train_step(images, priors, targets, epoch)
            hard = targets if targets.dim() == 1 else targets.argmax(1)
            total += torch.tensor([loss.item() * len(images), (logits.argmax(1) == hard).sum().item(), len(images)],
                                  dtype=torch.float64)
            bar.set_postfix(loss=f"{total[0] / total[2]:.4f}", acc=f"{total[1] / total[2]:.4f}")
        self.dist.all_reduce_sum(total)
        return {"train_loss": float(total[0] / total[2]), "train_accuracy": float(total[1] / total[2])}

    def _prepare(self, batch, train: bool):
        """A loader batch -> (normalised images on the device, raw-prior keyword arguments, targets)."""
        pixels, geometry, targets = split_batch(batch)
        pixels = pixels.to(self.device, non_blocking=True)
        if geometry is not None:
            geometry = {key: value.to(self.device, non_blocking=True) for key, value in geometry.items()}
        hidden = None
        if train and self.augment is not None:
            pixels, geometry, hidden = self.augment(pixels, geometry)
            if self.config.augment.image_dropout > 0:
                if geometry is None:  # a live backend: the priors of the pixels before some are blanked
                    geometry = self.face.measure(pixels)
                pixels = blank_faces(pixels, self.config.augment.image_dropout, self.contract.mean)
        images, priors = self.face.inputs(pixels, geometry, hidden)
        if self.config.run.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, priors, targets.to(self.device, non_blocking=True)

    @torch.no_grad()
    def evaluate_split(self, dataset, name: str) -> dict:
        """Validation/test figures of the model on a split (its cached priors, as in training)."""
        from orsanet.engine.metrics import ClassificationMetrics

        logits, targets = self.predict_split(dataset, name)
        metrics = ClassificationMetrics(self.label_names)
        metrics.update(logits, targets.argmax(1) if targets.dim() > 1 else targets)
        report = metrics.report()
        report["loss"] = float(soft_cross_entropy(logits, targets))
        return report

    @torch.no_grad()
    def predict_split(self, dataset, name: str = "predict") -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(N, C)`` and targets of a split, through ``FaceModel.logits`` with the cached geometry."""
        from orsanet.engine.evaluate import collect_predictions

        return collect_predictions(self.face, self._loader(dataset), self.config.run.max_eval_batches, desc=name,
                                   amp_dtype=self.amp_dtype, show=self.dist.is_main)

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict:
        config = self.config
        spent = self.history[-1].get("minutes", 0.0) if self.history else 0.0
        for epoch in range(self.start_epoch, config.optim.epochs + 1):
            started = time.monotonic()
            row = {"epoch": epoch, "lr": self.optimizer.param_groups[-1]["lr"], **self.train_epoch(epoch)}  # the fresh layers' rate
            valid = self.evaluate_split(self.valid_set, f"epoch {epoch} valid")
            row.update({f"valid_{key}": valid[key] for key in ("loss", "accuracy", "mean_class_accuracy", "macro_f1")})
            self.scheduler.step()
            spent += (time.monotonic() - started) / 60
            row["minutes"] = round(spent, 2)
            self.history.append(row)
            improved = valid[config.run.select_metric] > self.best["value"]
            if improved:
                self.best = {"metric": config.run.select_metric, "value": valid[config.run.select_metric],
                             "epoch": epoch}
            if self.dist.is_main:
                self._write_epoch(epoch, valid, improved)
            self.dist.barrier()
            log.info("epoch %d: train loss %.4f acc %.4f | valid acc %.4f mca %.4f%s", epoch, row["train_loss"],
                     row["train_accuracy"], valid["accuracy"], valid["mean_class_accuracy"],
                     " (best)" if improved else "")
            if os.environ.get("ORSANET_KILL_AFTER_EPOCH") == str(epoch):  # tests: simulate a killed run
                os.kill(os.getpid(), signal.SIGKILL)
            if config.run.max_minutes and spent + spent / epoch > config.run.max_minutes and epoch < config.optim.epochs:
                log.info("stopping after epoch %d: the next epoch would overrun the %.0f-minute budget (%.1f spent)",
                         epoch, config.run.max_minutes, spent)
                break
        return self._final_test()

    def _metadata(self, valid: dict, epoch: int) -> dict:
        return {"valid": {k: valid[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1", "num_images")},
                "epoch": epoch, "selected_on": f"validation {self.best['metric']}"}

    def _write_epoch(self, epoch: int, valid: dict, improved: bool) -> None:
        provenance = {"dataset": self.config.data.kind, "train_split": self.config.data.train_split,
                      "label_mode": self.config.data.label_mode, "recipe": self.config.optim.recipe,
                      "train_targets": "votes" if self.config.data.train_vote_targets else "labels"}
        fingerprint = self.face.priors.fingerprint() if self.face.priors is not None else None
        if fingerprint is not None:
            provenance["prior_weights"] = fingerprint
        save_model(self.output / "last.safetensors", self.model, self.label_names, self.contract,
                   self._metadata(valid, epoch), provenance)
        if improved:
            save_model(self.output / "best.safetensors", self.model, self.label_names, self.contract,
                       self._metadata(valid, epoch), provenance)
        with atomic_path(self.output / STATE_FILE) as temporary:
            torch.save(self._state(epoch), temporary)
        write_text_atomic(self.output / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.history))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(self.history[0]))
        writer.writeheader()
        writer.writerows(self.history)
        write_text_atomic(self.output / "metrics.csv", buffer.getvalue())
        from orsanet.plots import plot_training_curves

        plot_training_curves(self.history, self.output / "curves.png")

    def _final_test(self) -> dict:
        summary = {"best": self.best, "output_dir": str(self.output)}
        if self.test_set is None or not self.dist.is_main:
            return summary
        best = load_model(self.output / "best.safetensors", self.device)
        self.model.load_state_dict(best.state_dict())
        report = self.evaluate_split(self.test_set, "test")
        report["note"] = (f"test split evaluated once, after selecting epoch {self.best['epoch']} on validation "
                          f"{self.best['metric']}")
        write_text_atomic(self.output / "test_report.json", json.dumps(report, indent=2))
        log.info("test (evaluated once, model chosen on validation): accuracy %.4f, mean class accuracy %.4f",
                 report["accuracy"], report["mean_class_accuracy"])
        summary["test"] = {k: report[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1")}
        return summary


def train(config: TrainConfig, resume: bool = False, allow_config_change: bool = False) -> dict:
    """Run (or resume) a training run; returns the best validation score and the test figures."""
    return Trainer(config, resume, allow_config_change).fit()
