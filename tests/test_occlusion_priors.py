"""The occlusion-aware prior network: outputs, classes, mirror/warp of its geometry, its targets, the
backend on the one prior path, and its training stage end to end on a generated FERPlus folder."""

from __future__ import annotations

import json

import pytest
import torch
from data_fakes import make_ferplus
from safetensors.torch import load_file

from orsanet.priors.face_priors import PRIOR_BACKENDS, MeshPriors, prior_backend
from orsanet.priors.occlusion_net import (
    NUM_CLASSES,
    NUM_PARTS,
    OCCLUDED,
    PART_MIRROR,
    OcclusionNetPriors,
    OcclusionPriorNet,
    part_centres,
    prior_net_info,
)
from orsanet.priors.occlusion_net_training import (
    PriorNetRecipe,
    clean_targets,
    measure_prior_net,
    photos_dir,
    prior_net_loss,
    shuffled_tiles,
    train_prior_net,
    write_weights,
)
from orsanet.priors.parsing_map import LAPA_CLASSES


@pytest.fixture()
def backend(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "priors.safetensors"
    write_weights(OcclusionPriorNet(width=8), path, {})
    return OcclusionNetPriors(weights=path)


def test_network_outputs_and_classes():
    assert NUM_CLASSES == len(LAPA_CLASSES) + 1 and OCCLUDED == len(LAPA_CLASSES)
    out = OcclusionPriorNet(width=8)(torch.rand(3, 3, 64, 64))
    assert out["parsing"].shape == (3, NUM_CLASSES, 28, 28)
    assert out["heatmaps"].shape == (3, NUM_PARTS, 28, 28)
    assert out["visibility"].shape == (3, NUM_PARTS) and out["face"].shape == (3,)
    # any input size: the network reads a 56-px grey copy
    assert OcclusionPriorNet(width=8)(torch.rand(1, 3, 112, 112))["parsing"].shape == (1, NUM_CLASSES, 28, 28)


def test_backend_is_on_the_prior_path(backend):
    assert "occlusion_net" in PRIOR_BACKENDS and backend.live and not MeshPriors.live
    geometry = backend.measure(torch.rand(2, 3, 64, 64))
    assert torch.allclose(geometry["parsing"].sum(1), torch.ones(2, 28, 28), atol=1e-5)
    raw = backend.draw(geometry, hidden=torch.ones(2, 64, 64, dtype=torch.bool))  # the mask is not used
    assert raw["parsing_prior"].shape == (2, NUM_CLASSES, 28, 28)
    assert raw["landmark_prior"].shape == (2, 2 * NUM_PARTS, 28, 28)
    assert torch.equal(raw["parsing_prior"], backend.draw(geometry)["parsing_prior"])
    empty = backend.empty(2)
    assert not backend.valid(empty).any() and backend.draw(empty)["parsing_prior"][:, 0].eq(1).all()
    assert isinstance(prior_backend("occlusion_net"), OcclusionNetPriors)


def test_part_centres_are_where_the_heatmaps_peak():
    heatmaps = torch.zeros(2, NUM_PARTS, 28, 28)
    heatmaps[0, :, 7, 21] = 1.0  # row 7, column 21: x = 21.5 / 28, y = 7.5 / 28
    heatmaps[1, :, 14, 0:2] = 1.0  # two cells of one row: their middle
    centres = part_centres(heatmaps)
    assert centres.shape == (2, NUM_PARTS, 2)
    assert torch.allclose(centres[0], torch.tensor([21.5 / 28, 7.5 / 28]).expand(NUM_PARTS, 2))
    assert torch.allclose(centres[1], torch.tensor([1 / 28, 14.5 / 28]).expand(NUM_PARTS, 2))


def test_mirror_swaps_sides_and_is_its_own_inverse(backend):
    geometry = backend.measure(torch.rand(2, 3, 64, 64))
    twice = backend.mirror(backend.mirror(geometry))
    for key, value in geometry.items():
        assert torch.allclose(twice[key], value)
    once = backend.mirror(geometry)
    assert torch.allclose(once["heatmaps"][:, 0], geometry["heatmaps"][:, 1].flip(-1))  # brows swap sides
    assert torch.allclose(once["parsing"][:, 2], geometry["parsing"][:, 3].flip(-1))
    assert torch.allclose(once["parsing"][:, OCCLUDED], geometry["parsing"][:, OCCLUDED].flip(-1))
    assert PART_MIRROR[PART_MIRROR[2]] == 2


def test_warp_identity_and_shift(backend):
    geometry = backend.measure(torch.rand(2, 3, 64, 64))
    same = backend.warp(geometry, torch.eye(2).expand(2, 2, 2), torch.zeros(2, 2))
    assert torch.allclose(same["parsing"], geometry["parsing"], atol=1e-5)
    moved = backend.warp(geometry, torch.eye(2).expand(2, 2, 2), torch.full((2, 2), 0.5))
    assert torch.allclose(moved["parsing"].sum(1), torch.ones(2, 28, 28), atol=1e-5)  # outside: background


def test_network_flip_consistency_is_learnable(backend):
    """The mirror of the geometry is what the network should give on the mirrored crop: a flip-symmetric
    network (averaged with its mirror) meets it exactly."""
    pixels = torch.rand(2, 3, 64, 64)

    def symmetric(x):
        a, b = backend.measure(x), backend.mirror(backend.measure(x.flip(-1)))
        return {key: (a[key] + b[key]) / 2 for key in a}

    direct, mirrored = symmetric(pixels.flip(-1)), backend.mirror(symmetric(pixels))
    for key in direct:
        assert torch.allclose(direct[key], mirrored[key], atol=1e-5)


def test_targets_from_the_clean_face_and_the_mask():
    mesh = MeshPriors()
    points = torch.rand(2, 468, 2) * 0.6 + 0.2
    geometry = {"points": points, "presence": torch.ones(2)}
    hidden = torch.zeros(2, 64, 64, dtype=torch.bool)
    hidden[0, 32:] = True  # the lower half of the first face
    targets = clean_targets(mesh, geometry, hidden)
    assert torch.allclose(targets["parsing"].sum(1), torch.ones(2, 28, 28), atol=1e-5)
    assert targets["parsing"][0, OCCLUDED, 14:].min() == 1 and targets["parsing"][0, OCCLUDED, :14].max() == 0
    assert targets["parsing"][1, OCCLUDED].max() == 0
    assert targets["heatmaps"].shape == (2, NUM_PARTS, 28, 28)
    assert targets["visibility"][1].eq(1).all()
    out = OcclusionPriorNet(width=8)(torch.rand(2, 3, 64, 64))
    loss, terms = prior_net_loss(out, targets, torch.ones(2, dtype=torch.bool))
    loss.backward()
    assert set(terms) == {"parsing", "occluded", "heatmaps", "visibility", "face"}


def test_shuffled_tiles_keeps_the_pixels():
    pixels = torch.rand(2, 3, 64, 64)
    shuffled = shuffled_tiles(pixels, torch.Generator().manual_seed(0))
    assert shuffled.shape == pixels.shape
    assert torch.allclose(shuffled.sort(-1).values.sum(), pixels.sort(-1).values.sum())


def test_training_stage_runs_resumes_and_measures(tmp_path):
    root = make_ferplus(tmp_path / "ferplus", {"train": [[0, 10, 0, 0, 0, 0, 0, 0, 0, 0]] * 16,
                                               "valid": [[10, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 4,
                                               "test": [[10, 0, 0, 0, 0, 0, 0, 0, 0, 0]] * 2})
    recipe = PriorNetRecipe(root=str(root), output_dir=str(tmp_path / "run"), width=8, epochs=2, batch_size=8,
                            save_every=1, prior_cache=str(tmp_path / "cache"), face_crops=4)
    first = train_prior_net(recipe, max_minutes=1e-9)  # stops after one step, resumably
    assert not first.is_file() and (tmp_path / "run" / "prior-net-state.pt").is_file()
    weights = train_prior_net(recipe, resume=True)
    assert weights.is_file()
    state = torch.load(tmp_path / "run" / "prior-net-state.pt", weights_only=True)
    assert state["step"] == 4
    if photos_dir() is not None:  # the face score was refitted on faceless photos, and nothing else changed
        shipped = load_file(weights)
        changed = {key for key in shipped if not torch.equal(shipped[key], state["model"][key])}
        assert changed == {"global_head.weight", "global_head.bias"}
        for key in changed:
            rows = (shipped[key] != state["model"][key]).reshape(len(shipped[key]), -1).any(1).nonzero().flatten()
            assert rows.tolist() == [NUM_PARTS]  # the face score's row only
        refit = prior_net_info(weights)["face_score"]
        assert refit["sizes"] == [56, 64] and set(refit["held_out"]["56"]) == {
            "valid_faces", "valid_occluded_faces", "lfw_faces", "lfw_non_faces", "held_out_photo_crops"}
    report = measure_prior_net(str(root), weights, kinds=("square",), prior_cache=str(tmp_path / "cache"))
    assert set(report["square"]) >= {"occluder_iou", "parsing_agreement", "mesh_agreement", "mesh_found",
                                     "hidden_part_error", "visible_part_error", "hidden_parts"}
    assert 0 <= report["square"]["occluder_iou"] <= 1
    assert report["square"]["hidden_part_error"] >= 0 and report["square"]["visible_part_error"] >= 0
    json.dumps(report)


@pytest.fixture(params=[False, True], ids=["plain", "mask_occluded"])
def occlusion_model(prior_net_model, request):
    """A small model on the occlusion-aware priors, with random prior-network weights (with and
    without ``mask_occluded``)."""
    return prior_net_model(mask_occluded=request.param)


def test_model_on_the_new_priors_predicts_and_exports(occlusion_model, tmp_path):
    from orsanet.export import OnnxFaceModel, export_onnx, prior_graph_path
    from orsanet.face_model import FaceModel

    face = FaceModel.load(occlusion_model)
    assert isinstance(face.priors, OcclusionNetPriors)
    pixels = torch.rand(3, 3, 56, 56)
    reference = face.logits(pixels, flip=True)
    assert reference.shape == (3, 8)
    path = export_onnx(occlusion_model, tmp_path / "onnx" / "m.onnx")
    assert prior_graph_path(path).is_file()
    onnx_face = OnnxFaceModel(path, threads=1)
    assert torch.allclose(onnx_face.logits(pixels, flip=True), reference, atol=1e-4)


def test_pictures_paint_the_occluded_class():
    import numpy as np
    from PIL import Image

    from orsanet.inference.pictures import PARSING_COLOURS, parsing_colours

    parsing = np.zeros((NUM_CLASSES, 28, 28), np.float32)
    parsing[OCCLUDED, 14:] = 1
    parsing[1, :14] = 1
    colours = parsing_colours(parsing)
    assert np.allclose(colours[20, 5], PARSING_COLOURS[OCCLUDED]) and np.allclose(colours[5, 5], PARSING_COLOURS[1])
    assert parsing_colours(parsing[:OCCLUDED]).shape == (28, 28, 3)  # the mesh's 11 classes still work
    Image.fromarray(colours.astype(np.uint8))


def _trainer_on_priors(model, tmp_path, **augment):
    """A trainer on a generated FERPlus folder, starting from ``model``, without warps or occluders."""
    from orsanet.checkpoint import read_metadata
    from orsanet.engine.config import AugmentConfig, TrainConfig
    from orsanet.engine.train import Trainer

    votes = [[0, 10, 0, 0, 0, 0, 0, 0, 0, 0], [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]]
    root = make_ferplus(tmp_path / "ferplus", {"train": votes * 4, "valid": votes, "test": votes})
    config = TrainConfig()
    config.model = {**read_metadata(model).config.to_dict(), "init": str(model)}
    config.data.kind, config.data.root, config.data.num_workers = "ferplus", str(root), 0
    config.optim.batch_size, config.run.output_dir = 8, str(tmp_path / "run")
    config.augment = AugmentConfig(flip=False, erasing_p=0.0, **augment)
    return Trainer(config)


def test_image_dropout_blanks_the_pixels_and_keeps_the_priors_measured_on_them(prior_net_model, tmp_path):
    from orsanet.engine.batches import split_batch

    trainer = _trainer_on_priors(prior_net_model(), tmp_path, image_dropout=1.0)
    batch = next(iter(trainer._loader(trainer.train_set)))
    images, priors, _ = trainer._prepare(batch, train=True)
    assert images.shape == (8, 3, 56, 56) and images.abs().max() < 1e-6  # the contract's mean: zero once normalised
    pixels = split_batch(batch)[0]
    assert trainer.contract.normalise(pixels).abs().amax((1, 2, 3)).min() > 1  # the generated faces are not blank
    measured = trainer.face.priors.draw(trainer.face.measure(pixels))
    assert measured.keys() == priors.keys()
    assert all(torch.allclose(priors[key], measured[key], atol=1e-6) for key in priors)
    kept = _trainer_on_priors(prior_net_model(), tmp_path / "kept", image_dropout=0.0)
    images, _, _ = kept._prepare(batch, train=True)
    assert torch.allclose(images, kept.contract.normalise(pixels))  # no dropout: the faces as they are


def test_image_dropout_is_refused_for_a_model_without_priors(prior_net_model, tmp_path):
    from orsanet.engine.config import ConfigError

    with pytest.raises(ConfigError, match="augment.image_dropout: this model reads no priors"):
        _trainer_on_priors(prior_net_model(use_ssgm=False, use_mcm=False), tmp_path, image_dropout=0.5)
