"""The compact model with face-mesh priors: prior drawing, occluder blanking, batch augmentation
that moves pixels and points together, the on-disk prior cache, and a training run that uses it."""

from __future__ import annotations

import json

import pytest
import torch

from orsanet.engine.mesh_batches import BatchAugment
from orsanet.models import ORSANet, compact_config
from orsanet.models.mesh_priors import LANDMARK_GROUPS, mesh_raw_priors, mirror_raw_priors, part_heatmaps
from orsanet.priors import FaceMesh, flip_parsing_map
from orsanet.priors.cache import cached_mesh_points, load_mesh_cache
from test_train import CLASSES, make_folder_tree, run_cli

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def flip_permutation() -> torch.Tensor:
    return FaceMesh(batch_size=1).flip_permutation


def synthetic_points(batch: int, seed: int = 0) -> torch.Tensor:
    """``(B, 468, 2)`` points inside the central part of the crop."""
    return torch.rand(batch, 468, 2, generator=torch.Generator().manual_seed(seed)) * 0.5 + 0.25


def mirror(points: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    out = points[:, permutation].clone()
    out[..., 0] = 1 - out[..., 0]
    return out


def test_raw_priors_shapes_and_invalid_faces_are_empty():
    points = synthetic_points(3)
    landmark, parsing = mesh_raw_priors(points, torch.tensor([True, False, True]))
    assert landmark.shape == (3, 468, 3) and parsing.shape == (3, 11, 28, 28)
    assert landmark[1].abs().sum() == 0  # no face: no landmark known, the map is all background
    assert torch.equal(parsing[1, 0], torch.ones(28, 28)) and parsing[1, 1:].sum() == 0
    assert torch.all(landmark[[0, 2], :, 2] == 1)
    assert torch.allclose(parsing[0].sum(0), torch.ones(28, 28))  # soft class probabilities


def test_occluder_blanks_both_priors_inside_the_box_only():
    points = synthetic_points(1)
    box = torch.tensor([[0.0, 0.0, 0.5, 1.0]])  # the left half of the crop
    landmark, parsing = mesh_raw_priors(points, torch.tensor([True]), box)
    left = points[0, :, 0] <= 0.5
    assert torch.all(landmark[0, left, 2] == 0) and torch.all(landmark[0, ~left, 2] == 1)
    assert parsing[0, :, :, :14].sum() == 0 and parsing[0, :, :, 14:].sum() > 0
    _, unoccluded = mesh_raw_priors(points, torch.tensor([True]), torch.full((1, 4), float("nan")))
    assert unoccluded[0].sum() == pytest.approx(28 * 28)


def test_prior_of_a_mirrored_face_is_the_mirrored_prior(flip_permutation):
    points = synthetic_points(2, seed=1)
    landmark, parsing = mesh_raw_priors(points, torch.ones(2, dtype=torch.bool))
    landmark_m, parsing_m = mesh_raw_priors(mirror(points, flip_permutation), torch.ones(2, dtype=torch.bool))
    # part heatmaps: mirrored, with left and right brows/eyes swapped (groups 0<->1, 2<->3)
    swap = [1, 0, 3, 2] + list(range(4, len(LANDMARK_GROUPS)))
    assert torch.allclose(part_heatmaps(landmark_m), part_heatmaps(landmark).flip(-1)[:, swap], atol=1e-5)
    assert torch.allclose(parsing_m, flip_parsing_map(parsing), atol=1e-5)


def test_mirrored_raw_priors_are_the_priors_of_the_mirrored_points(flip_permutation):
    points, valid = synthetic_points(2, seed=3), torch.tensor([True, False])
    landmark_m, parsing_m = mirror_raw_priors(*mesh_raw_priors(points, valid))
    expected_landmark, expected_parsing = mesh_raw_priors(mirror(points, flip_permutation), valid)
    assert torch.allclose(landmark_m[0], expected_landmark[0], atol=1e-6)
    assert landmark_m[1].abs().sum() == 0  # no face stays no face
    assert torch.allclose(parsing_m, expected_parsing, atol=1e-5)


@pytest.mark.parametrize("priors", ["mesh", "none"])
def test_flip_averaged_prediction_is_the_same_for_a_mirrored_face(priors):
    torch.manual_seed(0)
    overrides = {} if priors == "mesh" else {"use_ssgm": False, "use_mcm": False}
    model = ORSANet(compact_config(len(CLASSES), dim=32, num_heads=4, **overrides), list(CLASSES)).eval()
    images = torch.randn(2, 3, 56, 56)
    given = dict(zip(("landmark_prior", "parsing_prior"), mesh_raw_priors(synthetic_points(2), torch.ones(2, dtype=torch.bool))))
    mirrored = dict(zip(("landmark_prior", "parsing_prior"), mirror_raw_priors(*given.values()))) if priors == "mesh" else {}
    given = given if priors == "mesh" else {}
    averaged = model.classify(images, **given, flip=True)
    assert torch.allclose(averaged, model.classify(images.flip(-1), **mirrored, flip=True), atol=1e-5)
    assert not torch.allclose(averaged, model.classify(images, **given))  # the mirror image did count
    assert torch.allclose(model.classify(images, **given), model(images, **given).logits)


def test_batch_augment_without_priors_augments_pixels_only():
    images = torch.rand(4, 3, 56, 56)
    augment = BatchAugment(torch.arange(468), MEAN, STD, train=True, flip=True, rotation=15, scale=(0.9, 1.1),
                           shift=0.1, occluder_p=1.0, occluder_area=(0.1, 0.1))
    out, priors, targets = augment((images, torch.arange(4)), torch.device("cpu"))
    assert priors == {} and out.shape == images.shape and torch.equal(targets, torch.arange(4))
    assert not torch.allclose(out, (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    plain, _, _ = BatchAugment(torch.arange(468), MEAN, STD, train=False)((images, torch.arange(4)), torch.device("cpu"))
    assert torch.allclose(plain * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1), images, atol=1e-6)


def test_batch_warp_moves_pixels_and_points_together(flip_permutation):
    """A bright dot drawn at a point must end up where the augmented point says."""
    size, batch = 56, 6
    points = torch.full((batch, 468, 2), 0.5)
    points[:, 0] = torch.tensor([0.3, 0.4])
    images = torch.zeros(batch, 3, size, size)
    images[:, :, int(0.4 * size) - 1:int(0.4 * size) + 1, int(0.3 * size) - 1:int(0.3 * size) + 1] = 1
    augment = BatchAugment(flip_permutation, MEAN, STD, train=True, flip=True, rotation=20, scale=(0.8, 1.2),
                           shift=0.1)
    torch.manual_seed(0)
    out, priors, _ = augment((images, points, torch.ones(batch, dtype=torch.bool), torch.zeros(batch)), torch.device("cpu"))
    for b in range(batch):
        brightness = (out[b] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1))[0]
        ys, xs = torch.nonzero(brightness > 0.3, as_tuple=True)
        dot = torch.stack([xs.float().mean() + 0.5, ys.float().mean() + 0.5]) / size
        moved = priors["landmark_prior"][b, :, :2]
        # the dot is point 0, or (after a flip) the point that mirrors 0
        candidates = moved[[0, int(flip_permutation[0])]]
        assert (candidates - dot).norm(dim=1).min() < 1.5 / size


def test_occluder_augmentation_blanks_priors_where_pixels_were_replaced(flip_permutation):
    augment = BatchAugment(flip_permutation, MEAN, STD, train=True, flip=False, occluder_p=1.0,
                           occluder_area=(0.2, 0.2))
    images = torch.rand(4, 3, 56, 56)
    batch = (images, synthetic_points(4), torch.ones(4, dtype=torch.bool), torch.zeros(4))
    out, priors, _ = augment(batch, torch.device("cpu"))
    pixels = out * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    changed = (pixels - images).abs().amax(1) > 1e-4  # (B, 56, 56)
    assert changed.flatten(1).float().mean(1).sub(0.2).abs().max() < 0.05
    # the parsing prior is empty on the changed pixels (at prior resolution)
    blank = torch.nn.functional.avg_pool2d(changed.float().unsqueeze(1), 2) == 1  # (B, 1, 28, 28)
    assert priors["parsing_prior"].sum(1, keepdim=True)[blank].abs().max() == 0


def test_compact_model_trains_with_given_priors_and_fits_the_mesh_itself():
    model = ORSANet(compact_config(len(CLASSES), dim=64, num_heads=4), list(CLASSES))
    assert model.uses_mesh_priors
    images = torch.randn(2, 3, 56, 56)
    landmark, parsing = mesh_raw_priors(synthetic_points(2), torch.ones(2, dtype=torch.bool))
    out = model(images, landmark_prior=landmark, parsing_prior=parsing)
    out.logits.sum().backward()
    assert out.logits.shape == (2, 3)
    assert model.landmark_source.adapter.encoder[0].weight.grad.abs().sum() > 0
    assert model.parsing_source.adapter[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        assert model(images).logits.shape == (2, 3)  # no priors given: the model fits the mesh
    assert not any("mesh" in key for key in model.state_dict())  # mesh weights stay out of checkpoints
    baseline = ORSANet(compact_config(3, use_ssgm=False, use_mcm=False))
    assert not baseline.uses_mesh_priors and baseline(images).logits.shape == (2, 3)


def test_prior_cache_is_computed_once_and_refuses_other_images(tmp_path):
    from orsanet.data import open_dataset

    root = make_folder_tree(tmp_path / "data", {"train": 2})
    dataset = open_dataset("folder", root, "train")
    points, presence = cached_mesh_points(dataset, tmp_path / "cache", progress=False)
    files = list((tmp_path / "cache").glob("*.safetensors"))
    assert len(files) == 1 and points.shape == (len(dataset), 468, 2) and presence.shape == (len(dataset),)
    stamp = files[0].stat().st_mtime_ns
    again, _ = cached_mesh_points(dataset, tmp_path / "cache", progress=False)
    assert files[0].stat().st_mtime_ns == stamp and torch.equal(again.isnan(), points.isnan())
    with pytest.raises(ValueError, match="prior cache was made for other images"):
        load_mesh_cache(files[0], dataset.names[::-1])


def test_train_compact_model_with_cached_priors_end_to_end(tmp_path):
    root = make_folder_tree(tmp_path / "data", {"train": 6, "valid": 2, "test": 2})
    out = tmp_path / "run"
    result = run_cli(["train", "--set", "data.kind=folder", "--set", f"data.root={root}",
                      "--set", "optim.recipe=adamw_cosine", "--set", "optim.epochs=1", "--set", "optim.batch_size=6",
                      "--set", "model.size=tiny", "--set", "model.image_backbone=resnet_compact",
                      "--set", "model.landmark_source=mesh_heatmaps", "--set", "model.parsing_source=mesh_parsing",
                      "--set", "model.dim=32", "--set", "model.num_heads=4", "--set", "model.input_size=56",
                      "--set", "augment.rotation=10", "--set", "augment.shift=0.05", "--set", "augment.erasing_p=0.5",
                      "--set", f"run.prior_cache={tmp_path / 'cache'}", "--set", f"run.output_dir={out}",
                      "--set", "data.num_workers=0"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 3  # train, valid, test
    report = json.loads((out / "test_report.json").read_text())
    assert report["num_images"] == 2 * len(CLASSES)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["minutes"] >= 0  # training time, for the time budget


def test_prior_dropout_gives_the_no_mesh_priors(flip_permutation):
    batch = (torch.rand(4, 3, 56, 56), synthetic_points(4), torch.ones(4, dtype=torch.bool), torch.zeros(4))
    dropped = BatchAugment(flip_permutation, MEAN, STD, train=True, flip=False, prior_dropout=1.0)
    _, priors, _ = dropped(batch, torch.device("cpu"))
    assert priors["landmark_prior"].abs().sum() == 0
    assert torch.equal(priors["parsing_prior"][:, 0], torch.ones(4, 28, 28))  # all background, as for no fit
    kept = BatchAugment(flip_permutation, MEAN, STD, train=False, prior_dropout=1.0)  # never at evaluation
    _, priors, _ = kept(batch, torch.device("cpu"))
    assert torch.all(priors["landmark_prior"][..., 2] == 1)
