"""``orsanet occlude`` (an occluded copy of a dataset tree) and ``orsanet robustness`` (several models
under the same occlusions), on a generated FERPlus-style tree of 48x48 faces cut from the example photo."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orsanet.checkpoint import save_model
from orsanet.cli import main
from orsanet.engine.evaluate import evaluate
from orsanet.engine.robustness import (DEFAULT_SETTINGS, HarnessModel, RobustnessError, parse_settings, robustness,
                                       stratified_first)
from orsanet.labels import FERPLUS_LABELS
from orsanet.models import ORSANet, ORSANetConfig
from orsanet.occlusion import read_manifest, rebuild
from orsanet.occlusion.dataset import MANIFEST_NAME, MASKS_DIR, image_tensor, to_uint8

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
SPLIT = "FER2013Test"


def face_crops() -> list[Image.Image]:
    """Eight 48x48 faces: the astronaut's face cut at slightly different boxes, some grey, one mirrored."""
    photo = Image.open(ASTRONAUT).convert("RGB")
    crops = []
    for k, (dx, dy, grow) in enumerate([(0, 0, 0), (6, 0, 0), (-6, 4, 4), (0, -6, -6), (4, 6, 8), (-4, -4, 10),
                                        (2, 2, -8), (0, 8, 6)]):
        box = (150 + dx - grow, 50 + dy - grow, 280 + dx + grow, 200 + dy + grow)
        face = photo.crop(box).resize((48, 48), Image.BILINEAR)
        if k == 5:
            face = face.transpose(Image.FLIP_LEFT_RIGHT)
        crops.append(face.convert("L") if k % 2 == 0 else face)
    return crops


def make_ferplus(root: Path) -> Path:
    """``root/FER2013Test``: one face per FERPlus class (contempt last), the sixth saved as JPEG, a
    label.csv with 10 unanimous votes each, a README, and an unlisted broken PNG."""
    folder = root / SPLIT
    folder.mkdir(parents=True)
    lines = []
    for index, (face, label) in enumerate(zip(face_crops(), FERPLUS_LABELS)):
        name = f"fer{index:07d}.{'jpg' if index == 5 else 'png'}"
        face.save(folder / name, **({"quality": 90} if name.endswith("jpg") else {}))
        votes = [0] * 10
        votes[FERPLUS_LABELS.index(label)] = 10
        lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (folder / "label.csv").write_text("\n".join(lines) + "\n")
    (root / "README.md").write_text("generated faces for the robustness tests\n")
    (folder / "broken.png").write_bytes(b"not a png")
    return root


def tiny_model_file(path: Path, labels) -> Path:
    torch.manual_seed(0)
    config = ORSANetConfig(num_classes=len(labels), image_backbone="ir18", size="small", dim=64, num_heads=4,
                           use_ssgm=False, use_mcm=False, input_size=112)
    return save_model(path, ORSANet(config, list(labels)), list(labels))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_ferplus(tmp_path_factory.mktemp("data") / "ferplus")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.safetensors", FERPLUS_LABELS)


# ------------------------------------------------------------------ orsanet occlude
def test_occlude_writes_the_same_layout_with_a_manifest_that_rebuilds_every_image(tree, model_file, tmp_path,
                                                                                 capsys):
    out = tmp_path / "occluded"
    assert main(["occlude", str(tree), str(out), "--kind", "medical_mask", "--seed", "3"]) == 0
    data_files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    out_files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(data_files) <= out_files  # every file mirrored
    for name in ("README.md", f"{SPLIT}/label.csv", f"{SPLIT}/broken.png"):  # copied unchanged
        assert (out / name).read_bytes() == (tree / name).read_bytes()

    rows = {row["image"]: row for row in read_manifest(out / MANIFEST_NAME)}
    images = [name for name in data_files if name.endswith((".png", ".jpg"))]
    assert sorted(rows) == images
    assert "error" in rows[f"{SPLIT}/broken.png"] and rows[f"{SPLIT}/broken.png"]["geometry"] is None
    changed = 0
    for name, row in rows.items():
        if "error" in row:
            continue
        assert row["kind"] == "medical_mask" and row["size"] == [48, 48]
        with Image.open(tree / name) as clean_file, Image.open(out / name) as saved_file:
            clean, saved_format, saved = image_tensor(clean_file), saved_file.format, np.asarray(saved_file)
        assert saved_format == ("JPEG" if name.endswith(".jpg") else "PNG")
        rebuilt, mask = rebuild(clean, None, row)
        if saved_format == "PNG":  # bit for bit
            assert np.array_equal(to_uint8(rebuilt), saved)
        with Image.open(out / MASKS_DIR / f"{name}.png") as mask_file:
            assert mask_file.size == (48, 48) and mask_file.mode == "1"
            assert np.array_equal(np.asarray(mask_file), mask.numpy())
        changed += bool(mask.any())
    assert changed == len(images) - 1

    # the copy is a dataset with the same labels
    report = evaluate(str(model_file), str(out), num_workers=0)
    assert report["num_images"] == 8 and report["dataset"]["kind"] == "ferplus"


def test_occlude_refuses_an_output_inside_the_data_or_a_non_empty_one(tree, tmp_path, capsys):
    assert main(["occlude", str(tree), str(tree / "occluded"), "--kind", "eyes"]) == 2
    error = capsys.readouterr().err.strip()
    assert "inside the data folder" in error and len(error.splitlines()) == 1
    assert not (tree / "occluded").exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "something.txt").write_text("x")
    assert main(["occlude", str(tree), str(full), "--kind", "eyes"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["occlude", str(tree), str(tmp_path / "o"), "--kind", "eyes", "--area", "0.2"]) == 2  # no area
    assert "area" in capsys.readouterr().err


def test_occlude_split_limits_the_copy_to_one_split_folder(tree, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["occlude", str(tree), str(out), "--kind", "square_black", "--area", "0.3", "--split", "test"]) == 0
    assert (out / SPLIT / "label.csv").is_file() and not (out / "README.md").exists()
    rows = read_manifest(out / MANIFEST_NAME)
    assert {row["image"].split("/")[0] for row in rows} == {SPLIT}
    assert all(row["params"] == {"area": 0.3} for row in rows if "error" not in row)


# ------------------------------------------------------------------ orsanet robustness
def test_settings_parse_and_refuse_bad_ones():
    names = [s.name for s in parse_settings(None)]
    assert names == list(DEFAULT_SETTINGS) and len(names) == 18
    assert [(s.kind, s.area) for s in parse_settings("square_mean@0.25,eyes")] == [("square_mean", 0.25),
                                                                                  ("eyes", None)]
    for bad in ("eyes@0.2", "nothing", "square_mean@2", "square_mean@x", "eyes,eyes"):
        with pytest.raises(RobustnessError):
            parse_settings(bad)
    assert stratified_first(list(range(10)), [0] * 6 + [1] * 4, 5) == [0, 1, 2, 6, 7]


def test_robustness_reports_every_model_and_writes_json_plot_and_sensitivity(tree, model_file, tmp_path, capsys):
    out = tmp_path / "report.json"
    settings = "square_mean@0.2,square_black@0.2,eyes,mouth,medical_mask"
    argv = ["robustness", str(model_file), "peer:fer-mini-xception", str(tree), "--settings", settings,
            "--json", str(out), "--plot", str(tmp_path / "curves.png"), "--sensitivity", str(tmp_path / "sens.png")]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "fer-mini-xception: scored on 7 images" in table and "left out: contempt (1 images)" in table
    report = json.loads(out.read_text())
    for name in ("curves.png", "sens.png"):
        with Image.open(tmp_path / name) as figure:
            assert figure.format == "PNG" and figure.size[0] > 400
    assert [s["name"] for s in report["settings"]] == settings.split(",")
    assert report["seed"] == 0 and report["dataset"]["images_evaluated"] == 8 and "orsanet_commit" in report

    ours, peer = report["models"]["tiny"], report["models"]["fer-mini-xception"]
    assert ours["num_images"] == 8 and ours["classes_scored"] == list(FERPLUS_LABELS)
    assert ours["provenance"]["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    # the 7-class peer leaves FERPlus's contempt out, and says so
    assert peer["num_images"] == 7 and "contempt" not in peer["classes_scored"]
    assert peer["left_out_data_labels"] == ["contempt"] and peer["provenance"]["license"] == "MIT"
    for figures in (*ours["settings"].values(), *peer["settings"].values()):
        assert set(figures) >= {"accuracy", "mean_class_accuracy", "macro_f1", "per_class_recall", "drop_points"}

    # the clean figures are evaluate's
    reference = evaluate(str(model_file), str(tree), num_workers=0)
    for key in ("accuracy", "mean_class_accuracy", "macro_f1", "num_images"):
        assert ours["clean"][key] == pytest.approx(reference[key])
    assert ours["clean"]["per_class_recall"] == pytest.approx(
        {name: c["recall"] for name, c in reference["per_class"].items() if c["support"]})


def test_every_model_meets_the_identical_occluded_image(tree, model_file, monkeypatch):
    seen: dict[str, list[str]] = {}
    original = HarnessModel.pixels

    def recording(self, image):
        seen.setdefault(self.name, []).append(hashlib.sha256(np.asarray(image.convert("RGB")).tobytes()).hexdigest())
        return original(self, image)

    monkeypatch.setattr(HarnessModel, "pixels", recording)
    settings = ["square_mean@0.3", "nose", "sunglasses"]
    report = robustness([str(model_file), "peer:face-api-expression"], str(tree), settings=settings, show=False)
    ours, peer = seen["tiny"], seen["face-api-expression"]
    assert len(ours) == 8 * 4 and len(peer) == 7 * 4  # clean + 3 settings, one batch; contempt is the 8th image
    assert peer == [h for k, h in enumerate(ours) if k % 8 != 7]
    assert all(ours[8 * (s + 1) + k] != ours[k] for s in range(3) for k in range(8))  # occluded differs from clean
    again = robustness([str(model_file)], str(tree), settings=settings, show=False)
    assert [s["images_sha256"] for s in again["settings"]] == [s["images_sha256"] for s in report["settings"]]


def test_limit_keeps_each_class_share_and_bad_input_is_one_line(tree, model_file, capsys):
    report = robustness([str(model_file)], str(tree), settings="square_black@0.1", limit=4, show=False)
    assert report["dataset"]["images_evaluated"] == 4 and report["models"]["tiny"]["num_images"] == 4
    assert main(["robustness", str(model_file), str(tree), "--settings", "eyes@0.3"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["robustness", "peer:nobody", str(tree)]) == 2
    assert "unknown peer" in capsys.readouterr().err


def test_prior_ablations_run_beside_the_model(tree, model_file, prior_net_model, capsys):
    path = prior_net_model()
    specs = [str(path), f"empty-priors:{path}", f"shuffled-priors:{path}", f"priors-only:{path}"]
    report = robustness(specs, str(tree), settings="medical_mask", show=False)
    assert list(report["models"]) == ["priored", "empty-priors:priored", "shuffled-priors:priored",
                                      "priors-only:priored"]
    assert report["models"]["priors-only:priored"]["provenance"]["priors"] == "only"
    assert report["models"]["empty-priors:priored"]["provenance"]["priors"] == "empty"
    own = HarnessModel.load(str(path))
    empty = HarnessModel.load(f"empty-priors:{path}")
    pixels = torch.rand(3, 3, 56, 56)
    assert not torch.allclose(own.logits(pixels), empty.logits(pixels), atol=1e-6)
    assert main(["robustness", f"empty-priors:{model_file}", str(tree), "--settings", "eyes"]) == 2
    assert "no prior backend" in capsys.readouterr().err
