"""A folder of at least 200 bad and odd inputs, generated here, with good photos among them:
``orsanet predict --json --csv --save-vis`` over it and the server over the same files. No
traceback, every good photo keeps its face row, every bad file its own row, exit code 0."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orsanet.cli import main
from test_bad_inputs import write_audio_only
from test_predict import ASTRONAUT, write_video

GOOD = 4


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge image, with a tiny (wrong) body."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_inputs(folder: Path) -> tuple[list[str], int]:
    """Good photos and bad inputs in ``folder``; returns the good files' names and the number of bad ones."""
    rng = random.Random(0)
    photo = Image.open(ASTRONAUT).convert("RGB")
    jpeg, png = ASTRONAUT.read_bytes(), png_bytes(photo)
    good = []
    for k in range(GOOD):
        name = f"good_{k}.jpg"
        photo.save(folder / name, quality=90)
        good.append(name)
    bad: list[tuple[str, bytes]] = []
    for k in range(50):  # truncated files of every length class
        cut = rng.randint(1, len(jpeg) - 1)
        bad.append((f"cut_{k}.jpg", jpeg[:cut]))
    for k in range(40):
        cut = rng.randint(1, len(png) - 1)
        bad.append((f"cut_{k}.png", png[:cut]))
    for k in range(40):  # random bytes, with and without a valid magic number
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2000)))
        bad.append((f"noise_{k}.{rng.choice(['jpg', 'png', 'bmp', 'gif', 'webp', 'tif'])}",
                    (b"\xff\xd8\xff" if k % 2 else b"") + body))
    for k in range(20):  # flipped bytes in the middle of a real photo
        data = bytearray(jpeg)
        for _ in range(50):
            data[rng.randrange(200, len(data))] = rng.getrandbits(8)
        bad.append((f"flipped_{k}.jpg", bytes(data)))
    bad += [(f"empty_{k}.{ext}", b"") for k, ext in enumerate(["jpg", "png", "mp4", "avi", "webp"])]
    bad += [(f"text_{k}.jpg", f"not an image {k}\n".encode()) for k in range(10)]
    bad += [(f"bomb_{k}.png", bomb_png(30000 + k, 30000)) for k in range(5)]
    bad += [(f"junk_{k}.mp4", bytes(rng.getrandbits(8) for _ in range(3000))) for k in range(10)]
    for name, data in bad:
        (folder / name).write_bytes(data)
    odd = 0  # readable but odd: tiny, wide modes, palettes, transparency, long and non-UTF-8 names
    for k, size in enumerate([(1, 1), (2, 3), (7, 500), (500, 7), (16, 16)]):
        Image.new("RGB", size, (k * 40, 80, 120)).save(folder / f"tiny_{k}.png")
        odd += 1
    grey = np.asarray(photo.convert("L"), dtype=np.float64)
    for k, (mode, values) in enumerate([("I;16", grey * 257), ("F", grey / 255), ("F", grey * 1000), ("I", grey * 65793)]):
        array = values.astype({"I;16": np.uint16, "F": np.float32, "I": np.int32}[mode])
        Image.fromarray(array).save(folder / f"wide_{k}.{'png' if mode == 'I;16' else 'tif'}")
        odd += 1
    for k, mode in enumerate(["P", "RGBA", "LA", "CMYK", "1", "L"]):
        photo.convert(mode).save(folder / f"mode_{k}.{'jpg' if mode == 'CMYK' else 'png'}")
        odd += 1
    for k in range(5):
        exif = Image.Exif()
        exif[0x0112] = [0, 9, 255, 3, 8][k]  # bad and good orientation tags
        photo.save(folder / f"exif_{k}.jpg", exif=exif)
        odd += 1
    photo.save(folder / ("long_" + "x" * 230 + ".jpg"))
    photo.save(folder / os.fsdecode(b"caf\xe9_\xff.jpg"))
    odd += 2
    frames = [np.asarray(photo.resize((96, 96)))] * 3
    write_video(folder / "short.mp4", frames)
    (folder / "short_cut.mp4").write_bytes((folder / "short.mp4").read_bytes()[:600])
    write_audio_only(folder / "sound_only.mp4")
    (folder / "folder.jpg").mkdir()  # a folder with an image's name: searched, holds one bad file
    (folder / "folder.jpg" / "inner.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    os.mkfifo(folder / "pipe.png")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")  # a link to itself
    return good, len(bad) + odd + 7


def test_fuzz_folder_through_predict_and_the_server(tiny_model, tmp_path, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    good, bad = make_inputs(folder)
    assert bad >= 200
    out_json, out_csv, vis = tmp_path / "p.json", tmp_path / "p.csv", tmp_path / "vis"
    paths = [str(folder), str(folder / "pipe.png"), str(folder / "loop.jpg")]  # the last two given by name
    code = main(["predict", *paths, "--model", str(tiny_model), "--json", str(out_json), "--csv", str(out_csv),
                 "--save-vis", str(vis), "--min-face", "200"])  # no tiled search: faces here are large
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err
    rows = json.loads(out_json.read_text())["faces"]
    with open(out_csv, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        assert len(list(csv.DictReader(handle))) == len(rows)
    by_file = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    for name in good:
        assert by_file[name][0]["error"] is None and by_file[name][0]["expression"], name
    for name in ("pipe.png", "loop.jpg", "sound_only.mp4", "text_0.jpg", "bomb_0.png", "cut_0.png"):
        assert by_file[name][0]["error"].startswith("unreadable"), (name, by_file[name])
    assert len(by_file) >= bad  # every input has its row(s)
    assert any(p.suffix == ".png" for p in vis.iterdir())

    pytest.importorskip("fastapi")
    httpx = pytest.importorskip("httpx")
    from orsanet.api import Recognizer
    from orsanet.serve import create_app

    app = create_app(recognizer=Recognizer(tiny_model, min_face=200))
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.is_symlink() and p.name != "pipe.png")

    async def post_all():
        statuses = {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            for path in files:
                upload_name = os.fsencode(path.name).decode("utf-8", "replace")  # a header carries text only
                response = await client.post("/v1/predict", files={"file": (upload_name, path.read_bytes())})
                body = response.json()  # every answer is JSON
                statuses[path.name] = (response.status_code, body)
                assert "Traceback" not in response.text
        return statuses

    try:
        statuses = asyncio.run(post_all())
    finally:
        app.state.batcher.close()
    assert all(code < 500 for code, _ in statuses.values()), {n: c for n, (c, _) in statuses.items() if c >= 500}
    for name in good:
        code, body = statuses[name]
        assert code == 200 and len(body["faces"]) == 1
    for name in ("text_0.jpg", "cut_0.png", "bomb_0.png", "empty_0.jpg"):
        code, body = statuses[name]
        assert 400 <= code < 500 and "error" in body, (name, code, body)
