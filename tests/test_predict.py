"""``orsanet predict`` end to end: the example photos, a folder with a corrupt file, a faceless
image, a two-face image and a video; priors on the example photo and their flip consistency."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from orsanet.checkpoint import DEFAULT_MODEL_PATH, save_model
from orsanet.cli import main
from orsanet.labels import dataset_label_names
from orsanet.models import ORSANet
from orsanet.priors import FaceDetector, FaceMesh, flip_parsing_map, roi_from_detection
from orsanet.priors.face_priors import MeshPriors

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ASTRONAUT = EXAMPLES / "astronaut.jpg"


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def test_priors_on_the_example_photo_and_its_mirror(astronaut):
    detector, mesh = FaceDetector(), FaceMesh()
    mirrored = np.ascontiguousarray(astronaut[:, ::-1])
    faces, faces_m = detector.detect([astronaut, mirrored])
    assert len(faces) == 1 and len(faces_m) == 1 and faces[0].score > 0.8
    fit = mesh.fit([astronaut, mirrored], torch.stack([roi_from_detection(faces[0]), roi_from_detection(faces_m[0])]))
    assert fit.found().all()
    width = astronaut.shape[1]
    # the mesh of the mirrored photo is the mirrored mesh (to a pixel or two on a ~95 px face)
    error = (mesh.flip_points(fit.landmarks[0, :, :2], width) - fit.landmarks[1, :, :2]).norm(dim=-1)
    assert error.median() < 1.5
    # ... and so is the parsing prior drawn from it, on the mirrored crop
    x0, y0, x1, y1 = faces[0].box
    side = x1 - x0
    points01 = (fit.landmarks[0, :, :2] - torch.tensor([x0, y0])) / side
    points01_m = (fit.landmarks[1, :, :2] - torch.tensor([width - x1, y0])) / side
    parsing = MeshPriors().draw({"points": torch.stack([points01, points01_m]), "presence": torch.ones(2)})["parsing_prior"]
    assert (flip_parsing_map(parsing[:1]) - parsing[1:]).abs().mean() < 0.03
    assert parsing[0, 1:].sum() > 100  # a face was drawn


def run_predict(args: list[str], capsys) -> tuple[int, str]:
    code = main(["predict", *args])
    return code, capsys.readouterr().out


def test_predict_on_the_examples_writes_rows_and_pictures(tiny_model, tmp_path, capsys):
    out_json, out_csv, vis = tmp_path / "p.json", tmp_path / "p.csv", tmp_path / "vis"
    code, table = run_predict([str(EXAMPLES), "--model", str(tiny_model), "--json", str(out_json),
                               "--csv", str(out_csv), "--save-vis", str(vis), "--flip"], capsys)
    assert code == 0
    report = json.loads(out_json.read_text())
    faces = report["faces"]
    assert sorted(Path(f["file"]).name for f in faces) == ["astronaut.jpg", "astronaut_masked.jpg"]
    for face in faces:
        assert face["error"] is None and face["prior_valid"] is True and len(face["box"]) == 4
        assert set(face["probabilities"]) == set(report["labels"])
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert face["expression"] == max(face["probabilities"], key=face["probabilities"].get)
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 2 and "p_contempt" in rows[0]
    assert sorted(p.name for p in vis.iterdir()) == ["astronaut.png", "astronaut_masked.png"]
    assert Image.open(vis / "astronaut.png").height > 512  # the photo plus a face panel
    assert "astronaut_masked.jpg" in table


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def test_predict_folder_with_corrupt_faceless_two_face_images_and_a_video(tiny_model, astronaut, tmp_path, capsys):
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    Image.new("RGB", (200, 150), (120, 130, 140)).save(folder / "flat.png")
    Image.new("RGB", (90, 90), (10, 20, 30)).save(folder / "sub" / "flat.jpg")  # its picture: flat_2.png
    face = astronaut[40:260, 120:330]  # one face with margin
    # two faces side by side, stored turned a quarter to the left, with the EXIF tag that turns it upright
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    two = Image.fromarray(np.concatenate([face, face[:, ::-1]], axis=1)).transpose(Image.Transpose.ROTATE_90)
    two.save(folder / "sub" / "two.jpg", exif=exif)
    write_video(folder / "clip.mp4", [np.ascontiguousarray(face[:208, :208])] * 7)
    vis = folder / "vis"  # pictures go inside the input folder: they must not be read as inputs
    vis.mkdir()
    Image.fromarray(face).save(vis / "earlier_run.png")
    out_json = tmp_path / "p.json"
    code, _ = run_predict([str(folder), "--model", str(tiny_model), "--json", str(out_json), "--every", "3",
                           "--save-vis", str(vis)], capsys)
    assert code == 0
    rows = json.loads(out_json.read_text())["faces"]
    by_file = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    assert by_file["corrupt.png"][0]["error"].startswith("unreadable")
    assert by_file["flat.png"] == [{**by_file["flat.png"][0], "error": "no face found", "face": None}]
    two = by_file["two.jpg"]
    assert len(two) == 2 and all(r["error"] is None for r in two)
    assert abs(two[0]["box"][0] - two[1]["box"][0]) > 100  # two different faces
    assert [r["frame"] for r in by_file["clip.mp4"]] == [0, 3, 6]
    assert "earlier_run.png" not in by_file and (vis / "earlier_run.png").is_file()
    assert {"flat.png", "flat_2.png", "two.png", "clip_frame000003.png"} <= {p.name for p in vis.iterdir()}


def test_predict_exit_codes(tiny_model, tmp_path, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"nothing")
    code, _ = run_predict([str(tmp_path / "bad.jpg"), str(tmp_path / "missing.png"), "--model", str(tiny_model)],
                          capsys)
    assert code == 1  # nothing could be read
    assert main(["predict", str(ASTRONAUT), "--model", str(tiny_model), "--every", "0"]) == 2


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="default model not packaged")
def test_default_model_predicts_the_examples(capsys):
    code, table = run_predict([str(EXAMPLES)], capsys)
    assert code == 0 and "astronaut.jpg" in table


def test_predict_with_a_network_prior_model(tmp_path, capsys):
    """Models whose priors are networks (the paper's layout) compute them on the crop themselves."""
    from orsanet.models import ORSANetConfig

    labels = dataset_label_names("rafdb")
    config = ORSANetConfig(num_classes=7, size="small", image_backbone="ir18", landmark_source="mobilefacenet",
                           use_ssgm=False, dim=64, num_heads=4, input_size=112)
    path = save_model(tmp_path / "paper_like.safetensors", ORSANet(config, labels), labels)
    out = tmp_path / "p.json"
    code, _ = run_predict([str(ASTRONAUT), "--model", str(path), "--json", str(out), "--save-vis", str(tmp_path / "v"),
                           "--flip"], capsys)
    faces = json.loads(out.read_text())["faces"]
    assert code == 0 and len(faces) == 1 and set(faces[0]["probabilities"]) == set(labels)
    assert (tmp_path / "v" / "astronaut.png").is_file()


def test_tiles_cover_the_photo_and_stop_where_the_whole_photo_suffices():
    from orsanet.priors.face_search import tile_origins, tile_sides

    assert tile_origins(100, 100) == [0] and tile_origins(80, 100) == [0]
    starts = tile_origins(1000, 286)
    assert starts[0] == 0 and starts[-1] == 1000 - 286 and max(np.diff(starts)) <= 143  # half a tile of overlap
    assert tile_sides(1024, 40) == [286, 571]  # faces of 40 px up; the whole photo shows 143 px and up
    assert tile_sides(250, 40) == []  # 14 % of 250 px is 35 px: the whole photo is enough


def small_face_photo(astronaut: np.ndarray, box_side: int, canvas: int = 900) -> tuple[np.ndarray, tuple[int, int]]:
    """The example face shrunk to a detector box of about ``box_side`` px on a grey canvas, and where it went."""
    face = Image.fromarray(astronaut[40:260, 120:330])  # detector box ~95 px in a 210 px crop
    side = round(box_side * 210 / 95)
    photo = Image.new("RGB", (canvas, canvas), (128, 128, 128))
    at = (canvas // 3, canvas // 2)
    photo.paste(face.resize((side, side), Image.BILINEAR), at)
    return np.asarray(photo), (at[0] + side // 2, at[1] + side // 2)


def test_small_faces_are_found_in_tiles(astronaut):
    from orsanet.priors.face_search import find_faces

    pixels, centre = small_face_photo(astronaut, 60)
    detector = FaceDetector()
    assert detector.detect([pixels])[0] == []  # too small for the detector on the whole photo
    whole, candidates = find_faces(detector, pixels, min_face=40)
    assert whole == [] and len(candidates) >= 1
    best = candidates[0]
    x0, y0, x1, y1 = best.box
    assert abs((x0 + x1) / 2 - centre[0]) < 20 and abs((y0 + y1) / 2 - centre[1]) < 30 and 40 < x1 - x0 < 90
    assert find_faces(detector, pixels, min_face=200) == ([], [])  # not searched for


def test_the_cascade_looks_again_only_where_the_full_range_detector_proposes(astronaut, monkeypatch):
    from orsanet.priors import face_search
    from orsanet.priors.face_detector_full_range import FullRangeFaceDetector

    assert face_search.tile_sides(1024, 40, seen_from=0.06 * 1024) == [286]  # the proposer sees faces of 61 px up
    assert face_search.tile_sides(512, 40, seen_from=0.06 * 512) == []  # ... of 31 px up: no grid at all
    pixels, centre = small_face_photo(astronaut, 60, canvas=600)
    detector, proposer = FaceDetector(), FullRangeFaceDetector()
    looked = []
    detect = detector.detect
    monkeypatch.setattr(detector, "detect", lambda images, *a, **k: looked.append(len(images)) or detect(images, *a, **k))
    whole, candidates = face_search.find_faces(detector, pixels, min_face=40, proposer=proposer)
    assert whole == [] and len(candidates) == 1 and looked == [1, 1]  # the whole photo, then one proposal tile
    x0, y0, x1, y1 = candidates[0].box
    assert abs((x0 + x1) / 2 - centre[0]) < 20 and abs((y0 + y1) / 2 - centre[1]) < 30 and 40 < x1 - x0 < 90
    tiles = face_search.proposal_tiles(candidates, 600, 600)
    (x, y, side), = tiles
    assert 0 <= x <= 600 - side and 0 <= y <= 600 - side and abs(side - (x1 - x0) / 0.3) < 2
    looked.clear()
    photo = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    whole, candidates = face_search.find_faces(detector, photo, min_face=40, proposer=proposer)
    assert len(whole) == 1 and candidates == [] and looked == [1]  # the proposal is the face already found
    proposed = []
    monkeypatch.setattr(proposer, "detect", lambda *a, **k: proposed.append(1) or [[]])
    face_search.find_faces(detector, photo, min_face=1000, proposer=proposer)
    assert proposed == []  # the whole photo shows every face of 1000 px: nothing to propose


def test_predict_finds_a_small_face_and_only_it(tiny_model, astronaut, tmp_path, capsys):
    pixels, _ = small_face_photo(astronaut, 60)
    Image.fromarray(pixels).save(tmp_path / "far.jpg")
    out = tmp_path / "p.json"
    code, _ = run_predict([str(tmp_path / "far.jpg"), "--model", str(tiny_model), "--json", str(out)], capsys)
    faces = json.loads(out.read_text())["faces"]
    assert code == 0 and len(faces) == 1 and faces[0]["error"] is None and faces[0]["prior_valid"]
    assert main(["predict", str(ASTRONAUT), "--model", str(tiny_model), "--min-face", "0"]) == 2


def test_recognizer_takes_paths_pil_images_and_arrays(tiny_model, astronaut):
    from orsanet import Recognizer

    recognizer = Recognizer(tiny_model)
    by_path = recognizer.predict(ASTRONAUT)
    by_image = recognizer.predict(Image.fromarray(astronaut))
    by_array = recognizer.predict(astronaut)
    assert len(by_path) == len(by_image) == len(by_array) == 1
    face = by_array[0]
    assert face.probabilities == pytest.approx(by_path[0].probabilities, abs=1e-6)
    assert face.expression == max(face.probabilities, key=face.probabilities.get) and face.prior_valid
    assert face.landmarks.shape == (468, 2) and face.heatmap is None  # no explanation unless asked
    x0, y0, x1, y1 = face.box
    assert ((face.landmarks >= [x0 - 20, y0 - 20]) & (face.landmarks <= [x1 + 20, y1 + 20])).mean() > 0.95
    row = face.to_dict()
    assert set(row) == {"face", "box", "expression", "confidence", "probabilities", "prior_valid", "detection_score"}
    json.dumps(face.to_dict(landmarks=True))
    explained = recognizer.predict(astronaut, explain=True)[0]
    assert explained.heatmap.shape == (7, 7) and explained.parsing.shape == (11, 28, 28)
    assert recognizer.annotate(astronaut, [explained]).height > astronaut.shape[0]
    with pytest.raises(TypeError, match="expected a path"):
        recognizer.predict(42)
    # several pictures: detected in the detection threads, classified in one batch, the same faces
    many = recognizer.predict_many([astronaut, np.zeros((64, 64, 3), np.uint8), ASTRONAUT])
    assert [len(faces) for faces in many] == [1, 0, 1]
    assert many[0][0].box == pytest.approx(face.box, abs=1e-3)
    assert many[2][0].probabilities == pytest.approx(face.probabilities, abs=1e-5)


def test_predict_computes_grad_cam_only_for_pictures(tiny_model, tmp_path, capsys, monkeypatch):
    import orsanet.inference.pipeline as pipeline

    calls = []
    real = pipeline.grad_cam
    monkeypatch.setattr(pipeline, "grad_cam", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run_predict([str(ASTRONAUT), "--model", str(tiny_model)], capsys)[0] == 0
    assert calls == []
    assert run_predict([str(ASTRONAUT), "--model", str(tiny_model), "--save-vis", str(tmp_path / "v")], capsys)[0] == 0
    assert calls == [1]


def test_rows_are_streamed_to_disk_as_they_come(tiny_model, astronaut, tmp_path, capsys, monkeypatch):
    """A crash in the middle of a run keeps the rows of every image done before it."""
    from orsanet.inference.pipeline import FacePipeline

    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(astronaut).save(folder / f"img{k}.jpg")
    real = FacePipeline.__call__
    seen = []

    def crash_on_the_third(self, photos, **kwargs):
        seen.extend(photos)
        if len(seen) == 3:
            raise RuntimeError("simulated crash")
        return real(self, photos, **kwargs)

    monkeypatch.setattr(FacePipeline, "__call__", crash_on_the_third)
    out_json, out_csv = tmp_path / "p.json", tmp_path / "p.csv"
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["predict", str(folder), "--model", str(tiny_model), "--json", str(out_json), "--csv", str(out_csv),
              "--batch-size", "1"])
    rows = json.loads(out_json.read_text())["faces"]  # closed on the way out: valid JSON
    assert [Path(r["file"]).name for r in rows] == ["img0.jpg", "img1.jpg"]
    lines = out_json.read_text().splitlines()  # a process killed outright leaves one row per line
    assert [json.loads(line.rstrip(","))["file"] for line in lines[1:3]] == [r["file"] for r in rows]
    assert len(list(csv.DictReader(out_csv.open()))) == 2


def test_json_output_is_valid_json_for_odd_file_names(tiny_model, astronaut, tmp_path, capsys):
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9.jpg")  # not valid UTF-8
    Image.fromarray(astronaut).save(folder / odd)
    out_json, out_csv = tmp_path / "p.json", tmp_path / "p.csv"
    assert run_predict([str(folder), "--model", str(tiny_model), "--json", str(out_json), "--csv", str(out_csv)],
                       capsys)[0] == 0
    assert len(json.loads(out_json.read_text())["faces"]) == 1
    assert out_csv.read_bytes().count(b"\n") == 2


def test_read_ahead_keeps_order_raises_in_place_and_stays_bounded():
    import threading

    from orsanet.inference.inputs import read_ahead

    assert list(read_ahead(iter(range(50)), depth=3)) == list(range(50))
    produced = []

    def numbers():
        for k in range(1000):
            produced.append(k)
            yield k

    reader = read_ahead(numbers(), depth=4)
    assert [next(reader) for _ in range(5)] == [0, 1, 2, 3, 4]
    import time
    time.sleep(0.3)
    assert len(produced) <= 5 + 4 + 1  # at most depth ahead of the consumer
    reader.close()  # stops the thread
    assert not any(t.name == "orsanet-read-ahead" and t.is_alive() for t in threading.enumerate())

    def broken():
        yield 1
        raise OSError("bad frame")

    got = []
    with pytest.raises(OSError, match="bad frame"):
        for item in read_ahead(broken(), depth=2):
            got.append(item)
    assert got == [1]


def test_tile_candidates_on_a_faceless_picture_are_not_reported():
    """The small-face search finds face-like spots in the Hubble deep field; the face mesh, which
    confirms them whatever the model's priors, sees none (the default's prior network would)."""
    skimage_data = pytest.importorskip("skimage.data")
    from orsanet import Recognizer

    recognizer = Recognizer()
    photo = skimage_data.hubble_deep_field()
    found = recognizer.finder(Image.fromarray(photo))
    assert sum(face.candidate for face in found) >= 3  # the search's candidates
    assert recognizer.predict(photo) == []
