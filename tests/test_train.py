"""Training end to end on a generated folder tree: kill after epoch 1, resume, evaluate; DDP; SAM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from orsanet.engine.config import ConfigError, load_config
from orsanet.engine.sam import SAM
from orsanet.engine.train import EpochSampler

CLASSES = ("neutral", "happiness", "surprise")


def make_folder_tree(root: Path, per_class: dict[str, int], seed: int = 0) -> Path:
    """split/class/*.png faces: a bright blob whose position depends on the class (learnable)."""
    generator = torch.Generator().manual_seed(seed)
    for split, count in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = (torch.rand(32, 32, 3, generator=generator) * 60).to(torch.uint8)
                pixels[4 + 8 * c: 12 + 8 * c, 8:24] = 230
                Image.fromarray(pixels.numpy()).save(folder / f"{split}_{name}_{i}.png")
    return root


TINY_MODEL = ["model.image_backbone=ir18", "model.size=small", "model.dim=64", "model.use_ssgm=false", "model.input_size=64"]


def run_cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orsanet.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


def test_config_overrides_and_errors(tmp_path):
    config = load_config(None, ["optim.recipe=adamw_cosine", "optim.lr=0.001", "data.kind=folder"])
    assert config.optim.lr == 0.001 and config.optim.weight_decay == 0.05 and config.data.kind == "folder"
    with pytest.raises(ConfigError, match="unknown keys run.colour"):
        load_config(None, ["run.colour=red"])
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("override, message", [
    ("optim.lr=fast", "optim.lr: expected a number, got 'fast'"),
    ("optim.epochs=two", "optim.epochs: expected an integer"),
    ("optim.batch_size=-4", "optim.batch_size: must be positive"),
    ("optim=5", "optim: expected a section"),
    ("augment.flip=maybe", "augment.flip: expected true or false"),
    ("augment.scale=0.9", "augment.scale: expected two numbers"),
    ("model.sise=tiny", "model: unknown keys sise"),
    ("model.size=huge", "model: size must be one of"),
    ("model.dim=wide", "model.dim: expected an integer"),
    ("data.color=blue", "data.color: must be one of auto, rgb, gray"),
])
def test_config_errors_are_one_line_naming_the_key(override, message):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_resume_refuses_a_changed_config_unless_told(folder_data, tmp_path):
    common = ["train", "--set", f"data.root={folder_data}", "--set", "data.kind=folder", "--set", "data.valid_split=null",
              "--set", "data.valid_fraction=0.25", "--set", "data.num_workers=0", "--set", "optim.epochs=1",
              "--set", "optim.batch_size=6", "--set", "run.threads=1", "--set", "run.max_train_batches=1",
              "--set", f"run.output_dir={tmp_path / 'run'}"] + [x for item in TINY_MODEL for x in ("--set", item)]
    assert run_cli(common).returncode == 0
    changed = run_cli(common + ["--set", "optim.lr=0.5", "--resume"])
    assert changed.returncode == 2 and "optim.lr: 1e-05 -> 0.5" in changed.stderr
    assert "--allow-config-change" in changed.stderr and "Traceback" not in changed.stderr
    allowed = run_cli(common + ["--set", "optim.lr=0.5", "--resume", "--allow-config-change"])
    assert allowed.returncode == 0, allowed.stderr[-2000:]


def test_sampler_is_balanced_and_depends_only_on_seed_and_epoch():
    labels = [0] * 90 + [1] * 10
    sampler = EpochSampler(labels, seed=3)
    sampler.set_epoch(2)
    first = sampler.order()
    again = EpochSampler(labels, seed=3)
    again.set_epoch(2)
    assert torch.equal(first, again.order())
    drawn = torch.tensor(labels * 20)[EpochSampler(labels * 20, seed=0).order()]
    assert 0.4 < drawn.float().mean() < 0.6  # both classes about equally often
    ranks = [EpochSampler(labels, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    assert sorted(torch.cat([r.order() for r in ranks]).tolist()) == sorted(first.tolist())


def test_sam_step_lowers_a_quadratic():
    w = torch.nn.Parameter(torch.tensor([3.0, -2.0]))
    sam = SAM([w], torch.optim.SGD, rho=0.05, lr=0.1)
    for _ in range(20):
        (w ** 2).sum().backward()
        sam.first_step()
        (w ** 2).sum().backward()
        sam.second_step()
    assert w.norm() < 0.1


@pytest.fixture(scope="module")
def folder_data(tmp_path_factory):
    return make_folder_tree(tmp_path_factory.mktemp("faces"), {"train": 8, "test": 4})


def test_train_killed_resumed_then_evaluated(folder_data, tmp_path):
    common = ["train", "--set", f"data.root={folder_data}", "--set", "data.kind=folder", "--set", "data.valid_split=null",
              "--set", "data.valid_fraction=0.25", "--set", "data.num_workers=0", "--set", "optim.epochs=2",
              "--set", "optim.batch_size=6", "--set", "optim.lr=0.001", "--set", "loss.warmup_epochs=1",
              "--set", "run.threads=2"] + [x for item in TINY_MODEL for x in ("--set", item)]
    straight = run_cli(common + ["--set", f"run.output_dir={tmp_path / 'straight'}"])
    assert straight.returncode == 0, straight.stderr

    killed = run_cli(common + ["--set", f"run.output_dir={tmp_path / 'resumed'}"], {"ORSANET_KILL_AFTER_EPOCH": "1"})
    assert killed.returncode != 0 and (tmp_path / "resumed" / "train_state.pt").exists()
    assert not (tmp_path / "resumed" / "test_report.json").exists()
    resumed = run_cli(common + ["--set", f"run.output_dir={tmp_path / 'resumed'}", "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stderr

    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "straight" / "last.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "a resumed run must end exactly where an uninterrupted one does"
    history = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2]
    assert (tmp_path / "resumed" / "curves.png").stat().st_size > 1000
    report = json.loads((tmp_path / "resumed" / "test_report.json").read_text())
    assert report["num_images"] == 12 and "evaluated once" in report["note"]

    out = tmp_path / "eval.json"
    evaluated = run_cli(["eval", str(tmp_path / "resumed" / "best.safetensors"), str(folder_data), "--kind", "folder",
                         "--split", "test", "--json", str(out)])
    assert evaluated.returncode == 0, evaluated.stderr
    figures = json.loads(out.read_text())
    for key in ("accuracy", "mean_class_accuracy", "macro_f1", "num_images", "label_protocol", "checkpoint_sha256",
                "config"):
        assert key in figures
    assert figures["accuracy"] == pytest.approx(report["accuracy"])
    assert (out.parent / "eval.confusion.png").exists()


def test_init_from_a_backbone_trained_alone_keeps_it_and_leaves_the_prior_branches_fresh(tmp_path):
    from orsanet.checkpoint import CheckpointError, save_model
    from orsanet.engine.train import initialise_from
    from orsanet.models import ORSANet, ORSANetConfig

    settings = dict(num_classes=3, image_backbone="resnet_compact", landmark_source="mesh_heatmaps",
                    parsing_source="mesh_parsing", dim=32, num_heads=2, size="tiny", input_size=56)
    torch.manual_seed(0)
    alone = ORSANet(ORSANetConfig(**settings, use_ssgm=False, use_mcm=False))
    path = save_model(tmp_path / "alone.safetensors", alone, list(CLASSES))
    full = ORSANet(ORSANetConfig(**settings))
    fresh_mcm = {k: v.clone() for k, v in full.mcm.state_dict().items()}
    initialise_from(full, path, list(CLASSES))
    for key, value in alone.image_backbone.state_dict().items():
        assert torch.equal(full.image_backbone.state_dict()[key], value)
    assert torch.equal(full.head.weight, alone.head.weight)
    assert all(torch.equal(full.mcm.state_dict()[k], v) for k, v in fresh_mcm.items())

    with pytest.raises(ValueError, match="alone.safetensors: labels"):
        initialise_from(full, path, ["a", "b", "c"])
    wider = ORSANet(ORSANetConfig(**{**settings, "dim": 48}))
    with pytest.raises(CheckpointError, match="alone.safetensors: shape mismatch"):
        initialise_from(wider, path, list(CLASSES))
    # the other way round: a backbone-only model takes a full model's backbone and head
    full_path = save_model(tmp_path / "full.safetensors", full, list(CLASSES))
    backbone_only = ORSANet(ORSANetConfig(**settings, use_ssgm=False, use_mcm=False))
    initialise_from(backbone_only, full_path, list(CLASSES))
    assert torch.equal(backbone_only.head.weight, full.head.weight)
    # other prior sources: their encoders start fresh, SSGM and MCM carry over
    other = ORSANet(ORSANetConfig(**{**settings, "landmark_source": "occlusion_net_heatmaps",
                                     "parsing_source": "occlusion_net_parsing"}))
    fresh_encoder = {k: v.clone() for k, v in other.parsing_source.state_dict().items()}
    initialise_from(other, full_path, list(CLASSES))
    assert all(torch.equal(other.parsing_source.state_dict()[k], v) for k, v in fresh_encoder.items())
    assert all(torch.equal(other.ssgm.state_dict()[k], v) for k, v in full.ssgm.state_dict().items())
    assert all(torch.equal(other.mcm.state_dict()[k], v) for k, v in full.mcm.state_dict().items())
    assert all(torch.equal(other.image_backbone.state_dict()[k], v) for k, v in full.image_backbone.state_dict().items())


@pytest.mark.slow
def test_compiled_training_runs_and_saves_the_plain_weights(folder_data, tmp_path):
    """``run.compile``: one epoch through torch.compile (slow: it compiles); the model file holds plain keys."""
    common = ["train", "--set", f"data.root={folder_data}", "--set", "data.kind=folder", "--set", "data.valid_split=null",
              "--set", "data.valid_fraction=0.25", "--set", "data.num_workers=0", "--set", "optim.epochs=1",
              "--set", "optim.batch_size=6", "--set", "run.threads=2", "--set", "run.compile=true",
              "--set", f"run.output_dir={tmp_path / 'run'}"] + [x for item in TINY_MODEL for x in ("--set", item)]
    done = run_cli(common)
    assert done.returncode == 0, done.stderr[-2000:]
    from safetensors.torch import load_file

    assert not any(key.startswith("_orig_mod") for key in load_file(str(tmp_path / "run" / "last.safetensors")))


@pytest.mark.parametrize("freeze", [None, 0])
def test_batchnorm_statistics_freeze_when_told(folder_data, tmp_path, freeze):
    from orsanet.engine.config import load_config
    from orsanet.engine.train import Trainer

    overrides = [f"data.root={folder_data}", "data.kind=folder", "data.valid_split=null", "data.valid_fraction=0.25",
                 "data.num_workers=0", "optim.epochs=1", "optim.batch_size=6", "run.threads=1",
                 "run.max_train_batches=2", f"run.output_dir={tmp_path / 'run'}", *TINY_MODEL]
    if freeze is not None:
        overrides.append(f"optim.freeze_batchnorm_after={freeze}")
    trainer = Trainer(load_config(None, overrides))
    norms = [m for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    before = [m.running_mean.clone() for m in norms]
    trainer.train_epoch(1)
    moved = any(not torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    assert moved == (freeze is None)


def test_a_resumed_run_follows_its_changed_schedule_at_once(folder_data, tmp_path):
    import math

    from orsanet.engine.config import load_config
    from orsanet.engine.train import Trainer

    base = [f"data.root={folder_data}", "data.kind=folder", "data.valid_split=null", "data.valid_fraction=0.25",
            "data.num_workers=0", "optim.batch_size=6", "run.threads=1", "run.max_train_batches=1",
            "run.max_eval_batches=1", "optim.recipe=adamw_cosine", "optim.warmup_epochs=0",
            f"run.output_dir={tmp_path / 'run'}", *TINY_MODEL]
    Trainer(load_config(None, base + ["optim.epochs=1", "optim.lr=0.001"])).fit()
    resumed = Trainer(load_config(None, base + ["optim.epochs=3", "optim.lr=0.002"]), resume=True,
                      allow_config_change=True)
    expected = 0.002 * 0.5 * (1 + math.cos(math.pi * 1 / 3))  # epoch 2 of 3 at the new peak rate
    assert resumed.start_epoch == 2
    assert all(abs(group["lr"] - expected) < 1e-12 for group in resumed.optimizer.param_groups)
