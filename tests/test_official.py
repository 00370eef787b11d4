"""Official checkpoints: key manifest round trip, numbers against the functional reference, errors."""

from __future__ import annotations

import pytest
import torch

from official_reference import official_forward, random_official_state, read_manifest
from orsanet import load_model
from orsanet.checkpoint import CheckpointError
from orsanet.cli import main
from orsanet.models import ORSANet, ORSANetConfig
from orsanet.official import (UNUSED_OFFICIAL_PREFIXES, assemble_from_components, convert_official,
                              map_official_keys)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def test_every_manifest_key_is_mapped_or_listed_as_unused():
    state = random_official_state("large")
    mapped, report = map_official_keys(state, "manifest")
    skipped = sum(len(keys) for keys in report.skipped.values())
    assert report.mapped + skipped == len(read_manifest("large"))
    model = ORSANet(ORSANetConfig(size="large"))
    assert set(mapped) == set(model.state_dict()), "mapping must cover our model exactly"
    assert all(any(k.startswith(p) for p, _ in UNUSED_OFFICIAL_PREFIXES) for keys in report.skipped.values() for k in keys)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory, official_state_large):
    """An official training checkpoint: DataParallel prefixes inside 'model_state_dict'."""
    path = tmp_path_factory.mktemp("official") / "rafdb_best.pth"
    torch.save({"iter": 3, "model_state_dict": {"module." + k: v for k, v in official_state_large.items()},
                "optimizer_state_dict": {}}, path)
    return path


def test_round_trip_matches_the_functional_reference(official_file, official_state_large, face_batch, tmp_path):
    """random official state -> convert-official -> load_model == official layout run directly."""
    destination = tmp_path / "converted.safetensors"
    assert main(["convert-official", str(official_file), str(destination), "--num-classes", "7", "--size", "large",
                 "--labels", "rafdb"]) == 0
    model = load_model(destination)
    assert model.label_names[0] == "surprise" and not model.training
    with torch.no_grad():
        ours = model(face_batch)
        reference_logits, reference_features = official_forward(official_state_large, face_batch)
    assert _relative_error(ours.logits, reference_logits) < 1e-4
    assert _relative_error(ours.features, reference_features) < 1e-4
    assert not torch.allclose(ours.logits[0], ours.logits[1])  # the check is not vacuous


def test_bare_state_dict_converts(official_state_large, tmp_path):
    path = tmp_path / "bare.pth"
    torch.save(official_state_large, path)
    model, report = convert_official(path, num_classes=7, size="large")
    assert report.mapped == len(model.state_dict())


def test_errors_name_the_file_and_the_problem(official_state_large, tmp_path):
    broken = dict(official_state_large)
    del broken["seg_fusion.conv_0.bias"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing.pth: 1 missing keys, e.g. ssgm.conv_0.bias"):
        convert_official(tmp_path / "missing.pth", 7, "large")

    broken = dict(official_state_large)
    broken["ir_layer.weight"] = torch.zeros(512, 1000)
    torch.save(broken, tmp_path / "shape.pth")
    with pytest.raises(CheckpointError, match=r"shape.pth: shape mismatch for image_backbone.token_proj.weight"):
        convert_official(tmp_path / "shape.pth", 7, "large")

    torch.save(dict(official_state_large, extra_thing=torch.zeros(1)), tmp_path / "unknown.pth")
    with pytest.raises(CheckpointError, match="not in the official ORSANet layout, e.g. extra_thing"):
        convert_official(tmp_path / "unknown.pth", 7, "large")

    torch.save(official_state_large, tmp_path / "ok.pth")
    with pytest.raises(CheckpointError, match="has 7 classes, --num-classes says 8"):
        convert_official(tmp_path / "ok.pth", 8, "large")
    with pytest.raises(CheckpointError, match="is ORSANet-large, --size says small"):
        convert_official(tmp_path / "ok.pth", 7, "small")

    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth: cannot be read"):
        convert_official(tmp_path / "garbage.pth", 7, "large")


def test_small_official_checkpoint_converts(tmp_path):
    state = random_official_state("small", num_classes=8, seed=3)
    torch.save(state, tmp_path / "small.pth")
    model, _ = convert_official(tmp_path / "small.pth", num_classes=8, size="small")
    assert len(model.mcm.blocks) == 4 and model.head.out_features == 8


def test_assemble_from_the_three_component_files(official_state_large, tmp_path):
    def strip(prefix):
        return {k[len(prefix):]: v for k, v in official_state_large.items() if k.startswith(prefix)}

    ir50 = strip("ir_back.")
    ir50["body.21.res_layer.0.weight"] = torch.ones(256)  # a fourth stage the model does not use
    torch.save(ir50, tmp_path / "ir50.pth")
    torch.save({"state_dict": strip("face_landback."), "epoch": 299}, tmp_path / "mobilefacenet_model_best.pth.tar")
    torch.save({"state_dict_backbone": strip("face_segment.")}, tmp_path / "model_299.pt")
    model = assemble_from_components(tmp_path / "ir50.pth", tmp_path / "mobilefacenet_model_best.pth.tar",
                                     tmp_path / "model_299.pt", num_classes=7)
    ours = model.state_dict()
    torch.testing.assert_close(ours["image_backbone.trunk.body.20.res_layer.1.weight"],
                               official_state_large["ir_back.body.20.res_layer.1.weight"])
    torch.testing.assert_close(ours["landmark_source.extractor.network.conv_6_sep.bn.running_var"],
                               official_state_large["face_landback.conv_6_sep.bn.running_var"])
    torch.testing.assert_close(ours["parsing_source.extractor.features.7.1.mlp.0.weight"],
                               official_state_large["face_segment.backbone.0.7.1.mlp.0.weight"])

    del ir50["body.3.res_layer.1.weight"]
    torch.save(ir50, tmp_path / "ir50_broken.pth")
    with pytest.raises(CheckpointError, match="ir50_broken.pth: 1 missing keys, e.g. image_backbone.trunk"):
        assemble_from_components(tmp_path / "ir50_broken.pth", tmp_path / "mobilefacenet_model_best.pth.tar",
                                 tmp_path / "model_299.pt", num_classes=7)
