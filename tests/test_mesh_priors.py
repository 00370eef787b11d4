"""The mesh prior backend and the compact model: drawing the priors, occluder masks, batch augmentation
that moves pixels and geometry together, the on-disk prior cache, and a training run that uses it."""

from __future__ import annotations

import json

import pytest
import torch

from orsanet.contract import InputContract
from orsanet.engine.batches import BatchAugment
from orsanet.face_model import FaceModel
from orsanet.models import ORSANet, compact_config
from orsanet.models.mesh_priors import LANDMARK_GROUPS, part_heatmaps
from orsanet.priors import FaceMesh, flip_parsing_map
from orsanet.priors.cache import cached_geometry, load_cache
from orsanet.priors.face_priors import MeshPriors
from test_train import CLASSES, make_folder_tree, run_cli


@pytest.fixture(scope="module")
def flip_permutation() -> torch.Tensor:
    return FaceMesh(batch_size=1).flip_permutation


@pytest.fixture(scope="module")
def backend() -> MeshPriors:
    return MeshPriors()


def synthetic_points(batch: int, seed: int = 0) -> torch.Tensor:
    """``(B, 468, 2)`` points inside the central part of the crop."""
    return torch.rand(batch, 468, 2, generator=torch.Generator().manual_seed(seed)) * 0.5 + 0.25


def geometry(points: torch.Tensor, valid=None) -> dict:
    valid = torch.ones(len(points), dtype=torch.bool) if valid is None else torch.as_tensor(valid)
    return {"points": torch.where(valid.view(-1, 1, 1), points, torch.full_like(points, float("nan"))),
            "presence": valid.float()}


def mirror(points: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    out = points[:, permutation].clone()
    out[..., 0] = 1 - out[..., 0]
    return out


def test_raw_priors_shapes_and_invalid_faces_are_empty(backend):
    priors = backend.draw(geometry(synthetic_points(3), [True, False, True]))
    landmark, parsing = priors["landmark_prior"], priors["parsing_prior"]
    assert landmark.shape == (3, 468, 3) and parsing.shape == (3, 11, 28, 28)
    assert landmark[1].abs().sum() == 0  # no face: no landmark known, the map is all background
    assert torch.equal(parsing[1, 0], torch.ones(28, 28)) and parsing[1, 1:].sum() == 0
    assert torch.all(landmark[[0, 2], :, 2] == 1)
    assert torch.allclose(parsing[0].sum(0), torch.ones(28, 28))  # soft class probabilities


def test_occluder_mask_blanks_both_priors_where_it_hides_the_face_only(backend):
    points = synthetic_points(1)
    hidden = torch.zeros(1, 56, 56, dtype=torch.bool)
    hidden[:, :, :28] = True  # the left half of the crop
    priors = backend.draw(geometry(points), hidden)
    left = points[0, :, 0] < 0.5
    assert torch.all(priors["landmark_prior"][0, left, 2] == 0) and torch.all(priors["landmark_prior"][0, ~left, 2] == 1)
    parsing = priors["parsing_prior"]
    assert parsing[0, :, :, :14].sum() == 0 and parsing[0, :, :, 14:].sum() > 0
    unoccluded = backend.draw(geometry(points), torch.zeros(1, 56, 56, dtype=torch.bool))["parsing_prior"]
    assert unoccluded[0].sum() == pytest.approx(28 * 28)


def test_prior_of_a_mirrored_face_is_the_mirrored_prior(backend, flip_permutation):
    points = synthetic_points(2, seed=1)
    priors = backend.draw(geometry(points))
    mirrored = backend.draw(geometry(mirror(points, flip_permutation)))
    # part heatmaps: mirrored, with left and right brows/eyes swapped (groups 0<->1, 2<->3)
    swap = [1, 0, 3, 2] + list(range(4, len(LANDMARK_GROUPS)))
    assert torch.allclose(part_heatmaps(mirrored["landmark_prior"]),
                          part_heatmaps(priors["landmark_prior"]).flip(-1)[:, swap], atol=1e-5)
    assert torch.allclose(mirrored["parsing_prior"], flip_parsing_map(priors["parsing_prior"]), atol=1e-5)
    # the backend's mirror is the mirrored points; no face stays no face
    mirrored_geometry = backend.mirror(geometry(points, [True, False]))
    assert torch.allclose(mirrored_geometry["points"][0], mirror(points, flip_permutation)[0])
    assert not backend.valid(mirrored_geometry)[1]


@pytest.mark.parametrize("priors", ["mesh", "none"])
def test_flip_averaged_prediction_is_the_same_for_a_mirrored_face(priors, flip_permutation):
    torch.manual_seed(0)
    overrides = {} if priors == "mesh" else {"use_ssgm": False, "use_mcm": False}
    face = FaceModel(ORSANet(compact_config(len(CLASSES), dim=32, num_heads=4, **overrides), list(CLASSES)).eval())
    pixels = torch.rand(2, 3, 56, 56)
    points = synthetic_points(2)
    given = geometry(points) if priors == "mesh" else None
    mirrored = geometry(mirror(points, flip_permutation)) if priors == "mesh" else None
    averaged = face.logits(pixels, given, flip=True)
    assert torch.allclose(averaged, face.logits(pixels.flip(-1), mirrored, flip=True), atol=1e-5)
    assert not torch.allclose(averaged, face.logits(pixels, given))  # the mirror image did count
    images, raw = face.inputs(pixels, given)
    assert torch.allclose(face.logits(pixels, given), face.model(images, **raw).logits)


def test_batch_augment_without_priors_augments_pixels_only():
    pixels = torch.rand(4, 3, 56, 56)
    augment = BatchAugment(None, flip=True, rotation=15, scale=(0.9, 1.1), shift=0.1, occluder_p=1.0,
                           occluder_area=(0.1, 0.1))
    out, geometry_out, hidden = augment(pixels)
    assert geometry_out is None and out.shape == pixels.shape and not torch.allclose(out, pixels)
    assert hidden.shape == (4, 56, 56) and hidden.flatten(1).float().mean(1).sub(0.1).abs().max() < 0.05


def test_batch_warp_moves_pixels_and_points_together(backend, flip_permutation):
    """A bright dot drawn at a point must end up where the augmented point says."""
    size, batch = 56, 6
    points = torch.full((batch, 468, 2), 0.5)
    points[:, 0] = torch.tensor([0.3, 0.4])
    pixels = torch.zeros(batch, 3, size, size)
    pixels[:, :, int(0.4 * size) - 1:int(0.4 * size) + 1, int(0.3 * size) - 1:int(0.3 * size) + 1] = 1
    augment = BatchAugment(backend, flip=True, rotation=20, scale=(0.8, 1.2), shift=0.1)
    torch.manual_seed(0)
    out, moved_geometry, _ = augment(pixels, geometry(points))
    for b in range(batch):
        ys, xs = torch.nonzero(out[b, 0] > 0.3, as_tuple=True)
        dot = torch.stack([xs.float().mean() + 0.5, ys.float().mean() + 0.5]) / size
        moved = moved_geometry["points"][b]
        # the dot is point 0, or (after a flip) the point that mirrors 0
        candidates = moved[[0, int(flip_permutation[0])]]
        assert (candidates - dot).norm(dim=1).min() < 1.5 / size


def test_occluder_augmentation_blanks_priors_where_pixels_were_replaced(backend):
    augment = BatchAugment(backend, flip=False, occluder_p=1.0, occluder_area=(0.2, 0.2))
    pixels = torch.rand(4, 3, 56, 56)
    out, geometry_out, hidden = augment(pixels, geometry(synthetic_points(4)))
    changed = (out - pixels).abs().amax(1) > 1e-4  # (B, 56, 56)
    assert torch.equal(changed, hidden)
    assert changed.flatten(1).float().mean(1).sub(0.2).abs().max() < 0.05
    priors = backend.draw(geometry_out, hidden)
    blank = torch.nn.functional.avg_pool2d(changed.float().unsqueeze(1), 2) == 1  # (B, 1, 28, 28)
    assert priors["parsing_prior"].sum(1, keepdim=True)[blank].abs().max() == 0


def test_compact_model_trains_with_given_priors_and_refuses_to_run_without(backend):
    model = ORSANet(compact_config(len(CLASSES), dim=64, num_heads=4), list(CLASSES))
    assert model.prior_backend == "mesh"
    images = torch.randn(2, 3, 56, 56)
    out = model(images, **backend.draw(geometry(synthetic_points(2))))
    out.logits.sum().backward()
    assert out.logits.shape == (2, 3)
    assert model.landmark_source.adapter.encoder[0].weight.grad.abs().sum() > 0
    assert model.parsing_source.adapter[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="reads 'mesh' priors"):
        model(images)  # the model never fits a mesh itself
    face = FaceModel(model.eval())  # ... FaceModel measures the priors on the pixels
    assert face.logits(torch.rand(2, 3, 56, 56)).shape == (2, 3)
    assert not any("mesh" in key for key in model.state_dict())  # mesh weights stay out of checkpoints
    baseline = ORSANet(compact_config(3, use_ssgm=False, use_mcm=False))
    assert baseline.prior_backend is None and baseline(images).logits.shape == (2, 3)


def test_prior_cache_is_computed_once_and_refuses_other_images(tmp_path, backend):
    from orsanet.data import open_dataset
    from orsanet.priors.cache import cache_fingerprint

    root = make_folder_tree(tmp_path / "data", {"train": 2})
    dataset = open_dataset("folder", root, "train")
    contract = InputContract(56)
    measured = cached_geometry(dataset, backend, contract, tmp_path / "cache", progress=False)
    files = list((tmp_path / "cache").glob("*.safetensors"))
    assert len(files) == 1 and measured["points"].shape == (len(dataset), 468, 2)
    assert measured["presence"].shape == (len(dataset),)
    stamp = files[0].stat().st_mtime_ns
    again = cached_geometry(dataset, backend, contract, tmp_path / "cache", progress=False)
    assert files[0].stat().st_mtime_ns == stamp and torch.equal(again["points"].isnan(), measured["points"].isnan())
    with pytest.raises(ValueError, match="prior cache was made for other images"):
        load_cache(files[0], cache_fingerprint(dataset.names[::-1], backend, contract), len(dataset))
    # another contract (size, colour) is another cache
    cached_geometry(dataset, backend, InputContract(56, color="gray"), tmp_path / "cache", progress=False)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


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


def test_prior_dropout_gives_the_no_mesh_priors(backend):
    pixels, given = torch.rand(4, 3, 56, 56), geometry(synthetic_points(4))
    _, dropped, _ = BatchAugment(backend, flip=False, prior_dropout=1.0)(pixels, given)
    priors = backend.draw(dropped)
    assert priors["landmark_prior"].abs().sum() == 0
    assert torch.equal(priors["parsing_prior"][:, 0], torch.ones(4, 28, 28))  # all background, as for no fit


def test_realistic_occluders_per_batch_hand_their_masks_to_the_priors(backend):
    augment = BatchAugment(backend, flip=False, occlusion_kinds={"medical_mask": 1.0}, occlusion_p=1.0)
    pixels = torch.rand(3, 3, 56, 56)
    given = geometry(synthetic_points(3))
    torch.manual_seed(0)
    out, _, hidden = augment(pixels, given)
    assert hidden.shape == (3, 56, 56) and hidden.flatten(1).any(1).all()
    changed = (out - pixels).abs().amax(1) > 1e-4
    assert changed[hidden].float().mean() > 0.95  # the mask marks pixels the occluder replaced
    weights = backend.draw(given, hidden)["landmark_prior"][..., 2]
    assert (weights == 0).any() and (weights == 1).any()  # hidden points lose their weight, others keep it
    torch.manual_seed(0)
    again, _, _ = augment(pixels, given)
    assert torch.equal(again, out)  # drawn from the global generator: a resumed run draws the same


def test_train_with_realistic_occluders_end_to_end(tmp_path):
    root = make_folder_tree(tmp_path / "data", {"train": 4, "valid": 2})
    result = run_cli(["train", "--set", "data.kind=folder", "--set", f"data.root={root}", "--set", "data.test_split=null",
                      "--set", "optim.recipe=adamw_cosine", "--set", "optim.epochs=1", "--set", "optim.batch_size=6",
                      "--set", "model.image_backbone=resnet_compact", "--set", "model.use_ssgm=false",
                      "--set", "model.use_mcm=false", "--set", "model.dim=32", "--set", "model.input_size=56",
                      "--set", "augment.occlusion_p=0.8", "--set", "augment.occlusion_kinds={hand: 1, square: 1}",
                      "--set", f"run.output_dir={tmp_path / 'run'}", "--set", "data.num_workers=0"])
    assert result.returncode == 0, result.stderr[-2000:]
    bad = run_cli(["train", "--set", "data.kind=folder", "--set", f"data.root={root}", "--set", "data.test_split=null",
                   "--set", "augment.occlusion_p=0.5", "--set", "augment.occlusion_kinds={mask: 1}"])
    assert bad.returncode == 2 and "augment: unknown occlusion kinds ['mask']" in bad.stderr


def test_two_fresh_runs_with_the_same_seed_end_with_the_same_weights(tmp_path):
    """The second run reads the prior cache the first one wrote: it must see the very same priors."""
    from safetensors.torch import load_file

    root = make_folder_tree(tmp_path / "data", {"train": 4, "valid": 2})
    common = ["train", "--set", "data.kind=folder", "--set", f"data.root={root}", "--set", "data.test_split=null",
              "--set", "optim.recipe=adamw_cosine", "--set", "optim.epochs=1", "--set", "optim.batch_size=4",
              "--set", "model.size=tiny", "--set", "model.image_backbone=resnet_compact",
              "--set", "model.landmark_source=mesh_heatmaps", "--set", "model.parsing_source=mesh_parsing",
              "--set", "model.dim=32", "--set", "model.num_heads=4", "--set", "model.input_size=56",
              "--set", "augment.rotation=10", "--set", "augment.erasing_p=0.5", "--set", "data.num_workers=2",
              "--set", f"run.prior_cache={tmp_path / 'cache'}"]
    for name in ("first", "second"):
        result = run_cli(common + ["--set", f"run.output_dir={tmp_path / name}"])
        assert result.returncode == 0, result.stderr[-2000:]
    first, second = (load_file(str(tmp_path / name / "last.safetensors")) for name in ("first", "second"))
    assert all(torch.equal(first[key], second[key]) for key in first)
