"""One road for every face: the same face through training's validation (cached priors), ``eval``
(priors measured on the split's crops) and ``predict`` / ``Recognizer`` (the face placed in a larger
photo, framed from its box) gets the same priors and the same probabilities.

Tolerances: the face pasted at its own size gives bit-identical crops, so priors and probabilities
agree to float precision (1e-4: the photo-pixel round trip of the points, batches of other sizes;
measured at most 3.2e-5 and 1.3e-5). Pasted three times larger, the crop is resampled from another
size (bilinear 144 -> 56 px instead of 48 -> 56 px): that is a different picture, not a different
road, and the mesh points still agree to 1.5 % of the crop side (measured at most 0.6 %); a model
trained on 48-px faces is sensitive to the resampling, so the probabilities agree only to 0.25
(measured: 0.039 on the example faces, 0.19 on an ambiguous FERPlus face, neutral 0.42 / anger 0.48).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import SHARED
from orsanet.api import Recognizer
from orsanet.checkpoint import DEFAULT_MODEL_PATH, read_metadata
from orsanet.engine.config import TrainConfig
from orsanet.engine.evaluate import evaluate
from orsanet.engine.train import Trainer
from orsanet.inference.framing import FaceFinder, box_of_frame

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="default model not packaged")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FERPLUS_TEST = SHARED / "data" / "ferplus" / "FER2013Test"
HAPPY_VOTES = "0,10,0,0,0,0,0,0,0,0"  # FERPlus vote columns: neutral, happiness, ... unknown, not a face


def example_faces() -> list[Image.Image]:
    """The two example photos' faces framed as FER2013 faces are, at 48 px grey (generated data)."""
    contract = read_metadata("default").contract
    finder = FaceFinder(contract)
    faces = []
    for name in ("astronaut.jpg", "astronaut_masked.jpg"):
        photo = Image.open(EXAMPLES / name).convert("RGB")
        frame = finder.best_face(photo).frame
        faces.append(photo.crop(tuple(round(v) for v in frame)).resize((48, 48), Image.BILINEAR).convert("L"))
    return faces


def ferplus_faces(count: int = 4) -> list[Image.Image]:
    names = sorted(p.name for p in FERPLUS_TEST.glob("*.png"))[:count]
    return [Image.open(FERPLUS_TEST / name).convert("L") for name in names]


def ferplus_tree(root: Path, faces: list[Image.Image]) -> Path:
    """A FERPlus-layout tree whose train, valid and test splits all hold ``faces`` (labelled happiness)."""
    for folder in ("FER2013Train", "FER2013Valid", "FER2013Test"):
        (root / folder).mkdir(parents=True)
        lines = []
        for k, face in enumerate(faces):
            face.save(root / folder / f"face{k:03d}.png")
            lines.append(f'face{k:03d}.png,"(0, 0, 48, 48)",{HAPPY_VOTES}')
        (root / folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def pasted(face: Image.Image, scale: int, canvas=(400, 300), at=(150, 80)) -> tuple[Image.Image, tuple]:
    """The face enlarged ``scale`` times on a grey photo, and the detector box whose frame is exactly it."""
    photo = Image.new("RGB", canvas, (90, 100, 110))
    side = 48 * scale
    photo.paste(face.convert("RGB").resize((side, side), Image.BILINEAR) if scale > 1 else face.convert("RGB"), at)
    frame = (at[0], at[1], at[0] + side, at[1] + side)
    return photo, box_of_frame(frame, read_metadata("default").contract)


@pytest.fixture(scope="module")
def mesh_model(tmp_path_factory) -> str:
    """The default's architecture and contract with the face mesh's priors (seeded random weights):
    the cached prior road, which the live prior network of the default does not take."""
    from orsanet.checkpoint import save_model
    from orsanet.models import ORSANet, ORSANetConfig

    metadata = read_metadata("default")
    config = ORSANetConfig(**{**metadata.config.to_dict(), "landmark_source": "mesh_heatmaps",
                              "parsing_source": "mesh_parsing"})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ORSANet(config, metadata.label_names)
    path = tmp_path_factory.mktemp("mesh") / "mesh.safetensors"
    return str(save_model(path, model, metadata.label_names, metadata.contract))


@pytest.mark.parametrize("priors", ["default", "mesh"])
@pytest.mark.parametrize("source", ["examples", "ferplus"])
def test_one_face_gets_the_same_priors_and_probabilities_on_every_road(source, priors, mesh_model, tmp_path):
    if source == "ferplus" and not FERPLUS_TEST.is_dir():
        pytest.skip("../shared/data/ferplus is absent")
    model = "default" if priors == "default" else mesh_model
    faces = example_faces() if source == "examples" else ferplus_faces()
    root = ferplus_tree(tmp_path / "data", faces)

    # 1. training's validation: mesh priors from the cache (measured when the run starts), or the
    #    prior network live on the same crops
    config = TrainConfig()
    config.model = {**read_metadata(model).config.to_dict(), "init": model}
    config.data.kind, config.data.root, config.data.num_workers = "ferplus", str(root), 0
    config.run.prior_cache, config.run.output_dir = str(tmp_path / "cache"), str(tmp_path / "run")
    trainer = Trainer(config)
    logits, _ = trainer.predict_split(trainer.valid_set)
    validation = logits.softmax(1)
    # (F, 468, 2) in [0, 1] of the crop, for the cached road
    cached_points = trainer.valid_set.geometry["points"] if hasattr(trainer.valid_set, "geometry") else None
    assert (cached_points is None) == (priors == "default")

    # 2. orsanet eval: priors measured on the split's crops
    report = evaluate(model, str(root), split="valid", per_image=True, num_workers=0)
    evaluated = torch.tensor(report["per_image"]["probabilities"])
    assert report["per_image"]["names"] == [f"face{k:03d}.png" for k in range(len(faces))]
    assert torch.allclose(evaluated, validation, atol=1e-5)

    # 3. predict: the face in a larger photo, framed from its box, at its own size and 3x larger
    recognizer = Recognizer(model)
    for scale, point_tolerance, probability_tolerance in ((1, 1e-4, 1e-4), (3, 0.015, 0.25)):
        for k, face in enumerate(faces):
            photo, box = pasted(face, scale)
            [found] = recognizer.predict(photo, boxes=[box])
            probabilities = torch.tensor([found.probabilities[name] for name in recognizer.labels])
            print(f"scale {scale} face {k}: probabilities differ by {(probabilities - validation[k]).abs().max():.2e}")
            assert (probabilities - validation[k]).abs().max() <= probability_tolerance, (scale, k)
            if cached_points is None:
                continue
            assert found.prior_valid == bool(~cached_points[k].isnan().any())
            if found.landmarks is not None:
                x0, y0, x1, _ = found.frame
                in_crop = (torch.from_numpy(found.landmarks) - torch.tensor([x0, y0])) / (x1 - x0)
                print(f"scale {scale} face {k}: points differ by {(in_crop - cached_points[k]).abs().max():.2e}")
                assert (in_crop - cached_points[k]).abs().max() <= point_tolerance, (scale, k)
