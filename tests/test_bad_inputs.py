"""Odd and bad inputs: each gets a clear one-line answer or a row of its own, and the rows of the
good files in the same run are never lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

from orsanet.cli import main
from test_predict import ASTRONAUT


def run(args, capsys) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def astronaut_rgb() -> np.ndarray:
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def write_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_wide_grey_images_are_scaled_not_clipped(tiny_model, astronaut_rgb, tmp_path, capsys):
    grey = np.asarray(Image.fromarray(astronaut_rgb).convert("L"), dtype=np.float64)
    Image.fromarray((grey * 257).astype(np.uint16)).save(tmp_path / "sixteen.png")  # 16-bit grey
    Image.fromarray((grey / 255).astype(np.float32), mode="F").save(tmp_path / "float.tif")  # float in [0, 1]
    out = tmp_path / "p.json"
    code, _, _ = run(["predict", str(tmp_path), "--model", str(tiny_model), "--json", str(out)], capsys)
    rows = {Path(r["file"]).name: r for r in json.loads(out.read_text())["faces"]}
    assert code == 0 and rows["sixteen.png"]["error"] is None and rows["float.tif"]["error"] is None


def test_audio_only_video_and_fifo_get_rows_and_the_run_goes_on(tiny_model, tmp_path, capsys):
    write_audio_only(tmp_path / "a_sound.mp4")
    os.mkfifo(tmp_path / "b_pipe.png")
    Image.open(ASTRONAUT).save(tmp_path / "c_face.jpg")
    out = tmp_path / "p.json"
    code, _, _ = run(["predict", str(tmp_path / "a_sound.mp4"), str(tmp_path / "b_pipe.png"), str(tmp_path / "c_face.jpg"),
                      "--model", str(tiny_model), "--json", str(out)], capsys)
    rows = {Path(r["file"]).name: r for r in json.loads(out.read_text())["faces"]}
    assert code == 0
    assert rows["a_sound.mp4"]["error"].startswith("unreadable") and rows["b_pipe.png"]["error"].startswith("unreadable")
    assert rows["c_face.jpg"]["error"] is None


@pytest.mark.parametrize("option", ["--json", "--csv", "--save-vis"])
@pytest.mark.parametrize("where", ["folder", "under_a_file", "read_only"])
def test_outputs_that_cannot_be_written_are_refused_before_the_work(option, where, tiny_model, tmp_path, capsys):
    if where == "folder":
        target = tmp_path
        if option == "--save-vis":
            (tmp_path / "a_file").write_text("x")
            target = tmp_path / "a_file"  # --save-vis wants a folder: a file is what it cannot use
    elif where == "under_a_file":
        (tmp_path / "file").write_text("x")
        target = tmp_path / "file" / "out"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders: the failure cannot happen")
        (tmp_path / "ro").mkdir(mode=0o500)
        target = tmp_path / "ro" / "out"
    code, out, err = run(["predict", str(ASTRONAUT), "--model", str(tiny_model), option, str(target)], capsys)
    assert code == 2 and err.count("\n") == 1 and ("cannot write the results" in err or "--save-vis" in err), err
    assert "astronaut" not in out  # refused before any work


def test_save_vis_handles_faces_at_the_border_and_long_names(tiny_model, astronaut_rgb, tmp_path, capsys):
    face = Image.fromarray(astronaut_rgb[75:175, 165:265]).resize((48, 48))  # a tight crop: the frame leaves the image
    long_name = "f" * 200 + ".png"
    face.save(tmp_path / long_name)
    code, _, _ = run(["predict", str(tmp_path / long_name), "--model", str(tiny_model), "--min-face", "20",
                      "--save-vis", str(tmp_path / "vis"), "--json", str(tmp_path / "p.json")], capsys)
    [row] = json.loads((tmp_path / "p.json").read_text())["faces"]
    assert code == 0 and row["error"] is None and row["box"][1] < 0 < row["box"][3]  # the box starts above the image
    assert len(list((tmp_path / "vis").iterdir())) == 1


def bad_model(path: Path, tiny_model: Path, change) -> Path:
    """A copy of a model file whose metadata ``change(values) -> raw JSON text`` rewrites."""
    from safetensors import safe_open

    with safe_open(str(tiny_model), "pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        values = json.loads(handle.metadata()["orsanet"])
    save_file(tensors, str(path), metadata={"orsanet": change(values)})
    return path


@pytest.mark.parametrize("change, message", [
    (lambda v: "{not json", "metadata is not valid JSON"),
    (lambda v: json.dumps({**v, "label_names": v["label_names"][:3]}), "3 label names for a 8-class model"),
    (lambda v: json.dumps({**v, "preprocessing": {**v["preprocessing"], "input_size": 0}}), "input_size must be"),
    (lambda v: json.dumps({**v, "preprocessing": {**v["preprocessing"], "mean": "grey"}}), "mean must be three"),
    (lambda v: json.dumps({k: x for k, x in v.items() if k != "preprocessing"}), "no preprocessing block"),
])
def test_model_files_with_bad_metadata_are_refused_by_every_command(change, message, tiny_model, tmp_path, capsys):
    path = bad_model(tmp_path / "bad.safetensors", tiny_model, change)
    for args in (["info", str(path)], ["predict", str(ASTRONAUT), "--model", str(path)],
                 ["eval", str(path), str(tmp_path)]):
        code, _, err = run(args, capsys)
        assert code == 2 and message in err and err.count("\n") == 1 and str(path) in err, (args, err)
