"""Evaluation across label spaces: a RAF-DB-ordered model on data with another order and an
extra class is mapped by name; the unmappable class is left out and reported; the result does
not depend on the order in which the model stores its classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from orsanet.checkpoint import save_model
from orsanet.engine.evaluate import evaluate
from orsanet.labels import dataset_label_names
from orsanet.models import ORSANet, ORSANetConfig

DATA_CLASSES = {"happiness": 4, "neutral": 3, "contempt": 2}  # class folder -> images


def make_tree(root: Path) -> Path:
    generator = torch.Generator().manual_seed(0)
    for name, count in DATA_CLASSES.items():
        (root / "test" / name).mkdir(parents=True)
        for i in range(count):
            pixels = (torch.rand(40, 40, 3, generator=generator) * 255).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(root / "test" / name / f"{name}_{i}.png")
    return root


def tiny_model(labels: list[str]) -> ORSANet:
    torch.manual_seed(0)
    config = ORSANetConfig(num_classes=len(labels), image_backbone="ir18", size="small", dim=64, num_heads=4,
                           use_ssgm=False, use_mcm=False, input_size=112)
    return ORSANet(config, labels)


def test_model_labels_are_mapped_by_name_and_unknown_classes_reported(tmp_path):
    root = make_tree(tmp_path / "data")
    rafdb = dataset_label_names("rafdb")  # surprise, fear, disgust, happiness, sadness, anger, neutral
    model = tiny_model(rafdb)
    path = save_model(tmp_path / "rafdb.safetensors", model, rafdb)
    report = evaluate(str(path), str(root), "folder", "test", num_workers=0)
    protocol = report["label_protocol"]
    assert protocol["left_out_data_labels"] == ["contempt"] and protocol["left_out_images"] == 2
    assert protocol["mapping"] == {"happiness": "happiness", "neutral": "neutral"}
    assert report["num_images"] == 7

    # the same network with its classes stored in another order gives the same evaluation
    order = list(reversed(range(len(rafdb))))
    permuted = tiny_model([rafdb[i] for i in order])
    permuted.load_state_dict(model.state_dict())
    with torch.no_grad():
        permuted.head.weight.copy_(model.head.weight[order])
        permuted.head.bias.copy_(model.head.bias[order])
    other = save_model(tmp_path / "reversed.safetensors", permuted)
    again = evaluate(str(other), str(root), "folder", "test", num_workers=0)
    assert again["accuracy"] == pytest.approx(report["accuracy"])
    assert again["mean_class_accuracy"] == pytest.approx(report["mean_class_accuracy"])


def test_evaluation_refuses_data_whose_labels_cannot_be_mapped(tmp_path):
    root = tmp_path / "data"
    (root / "test" / "contempt").mkdir(parents=True)
    Image.new("RGB", (40, 40)).save(root / "test" / "contempt" / "a.png")
    path = save_model(tmp_path / "rafdb.safetensors", tiny_model(dataset_label_names("rafdb")))
    with pytest.raises(ValueError, match="none of the data's labels"):
        evaluate(str(path), str(root), "folder", "test", num_workers=0)


def test_eval_subset_groups_results_by_condition_and_reports_corrupt_images(tmp_path, capsys):
    import json

    from orsanet.cli import main

    root = make_tree(tmp_path / "data")
    (root / "test" / "neutral" / "broken.png").write_bytes(b"not an image")
    subset = tmp_path / "occlusion.txt"
    subset.write_text("happiness/happiness_0.png happiness mask\nhappiness/happiness_1.png - mask\n"
                      "neutral/neutral_0.png neutral glasses\nneutral/broken.png - glasses\n")
    path = save_model(tmp_path / "m.safetensors", tiny_model(dataset_label_names("ferplus")))
    out = tmp_path / "report.json"
    assert main(["eval", str(path), str(root), "--split", "test", "--subset", str(subset), "--json", str(out),
                 "--workers", "0"]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == 3  # the broken image is left out, not replaced
    assert {name: group["num_images"] for name, group in report["per_condition"].items()} == {"mask": 2, "glasses": 1}
    assert any("broken.png" in name for name in report["dataset"]["unreadable_images"])


def test_eval_defaults_find_the_kind_and_read_a_flat_class_tree(tmp_path, capsys):
    from orsanet.cli import main

    root = make_tree(tmp_path / "data") / "test"  # root/<class>/image: no split folder
    labels = ["happiness", "neutral", "contempt"]
    model = save_model(tmp_path / "m.safetensors", tiny_model(labels), labels)
    out = tmp_path / "r.json"
    assert main(["eval", str(model), str(root), "--json", str(out), "--workers", "0"]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == sum(DATA_CLASSES.values()) and report["dataset"]["kind"] == "folder"
    assert report["dataset"]["split"] is None


def test_eval_crop_detect_frames_faces_like_predict_and_lists_faceless_images(tmp_path, capsys):
    from orsanet.cli import main

    astronaut = Image.open(Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg").convert("RGB")
    root = tmp_path / "photos"
    (root / "happiness").mkdir(parents=True)
    (root / "neutral").mkdir()
    astronaut.save(root / "happiness" / "face.jpg")
    Image.new("RGB", (300, 200), (120, 120, 120)).save(root / "neutral" / "wall.jpg")
    labels = ["happiness", "neutral"]
    model = save_model(tmp_path / "m.safetensors", tiny_model(labels), labels)
    out = tmp_path / "r.json"
    assert main(["eval", str(model), str(root), "--crop", "detect", "--json", str(out), "--workers", "0",
                 "--per-image"]) == 0
    report = json.loads(out.read_text())
    assert report["num_images"] == 1 and report["per_image"]["names"] == ["happiness/face.jpg"]
    assert [Path(p).name for p in report["dataset"]["images_without_face"]] == ["wall.jpg"]
    assert "no face found in 1 images" in capsys.readouterr().out


def test_prior_ablation_gives_no_priors_another_faces_or_the_priors_alone(tmp_path, prior_net_model):
    root = make_tree(tmp_path / "data")
    path = prior_net_model()
    labels = dataset_label_names("ferplus")

    def probabilities(priors: str, batch_size: int = 16) -> torch.Tensor:
        report = evaluate(str(path), str(root), "folder", "test", num_workers=0, per_image=True, priors=priors,
                          batch_size=batch_size)
        assert report["priors"] == priors
        return torch.tensor(report["per_image"]["probabilities"])

    measured = probabilities("measured")
    assert not torch.allclose(probabilities("empty"), measured, atol=1e-6)
    assert not torch.allclose(probabilities("shuffled"), measured, atol=1e-6)
    assert torch.allclose(probabilities("shuffled", batch_size=1), measured, atol=1e-6)  # alone in its batch: its own
    alone = probabilities("only")  # its own priors, the face blanked
    assert not torch.allclose(alone, measured, atol=1e-6)
    assert not torch.allclose(alone, probabilities("empty"), atol=1e-6)
    plain = save_model(tmp_path / "plain.safetensors", tiny_model(labels), labels)
    with pytest.raises(ValueError, match="no prior backend"):
        evaluate(str(plain), str(root), "folder", "test", num_workers=0, priors="empty")
