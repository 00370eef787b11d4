"""Builders of tiny fake dataset trees (generated images of a few pixels) for the reader tests."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import Image

AFFECTNET_HEADER = ("subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,"
                    "expression,valence,arousal")


def save_image(path: Path, value: int = 128, size: int = 6) -> Path:
    """A small grey-level image whose pixels all equal ``value`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (size, size), value).save(path)
    return path


def save_corrupt(path: Path, kind: str = "garbage") -> Path:
    """An unreadable image file: random bytes (``garbage``) or a valid PNG cut in half (``truncated``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        path.write_bytes(b"definitely not an image" * 4)
    else:
        save_image(path, size=32)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    return path


def make_ferplus(root: Path, splits: dict[str, Sequence[Sequence[int]]], missing: Iterable[str] = ()) -> Path:
    """FERPlus layout: ``FER2013<Split>/label.csv`` plus one PNG per line (except names in ``missing``)."""
    folders = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
    number = 0
    for split, rows in splits.items():
        folder = root / folders[split]
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for votes in rows:
            name = f"fer{number:07d}.png"
            number += 1
            lines.append(f'{name},"(0, 0, 48, 48)",' + ",".join(str(v) for v in votes))
            if name not in missing:
                save_image(folder / name, value=number)
        (folder / "label.csv").write_text("\n".join(lines) + "\n")
    return root


def fer2013_row(emotion: int, usage: str, value: int) -> str:
    pixels = " ".join(str((value + i) % 256) for i in range(48 * 48))
    return f'{emotion},"{pixels}",{usage}'


def make_fer2013_csv(path: Path, rows: Sequence[tuple[int, str]]) -> Path:
    """``fer2013.csv`` with one row per ``(emotion, Usage)``; row r's first pixel is r."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["emotion,pixels,Usage"] + [fer2013_row(emotion, usage, r) for r, (emotion, usage) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_class_tree(root: Path, layout: dict[str, dict[str, int]], suffix: str = ".png") -> Path:
    """``root/<split>/<class folder>/<n images>``; ``layout = {split: {folder name: count}}``."""
    for split, classes in layout.items():
        for class_name, count in classes.items():
            for i in range(count):
                save_image(root / split / class_name / f"{class_name}_{i}{suffix}", value=10 * i)
    return root


def make_rafdb(root: Path, entries: Sequence[tuple[str, int]], missing: Iterable[str] = ()) -> Path:
    """RAF-DB basic: ``EmoLabel/list_patition_label.txt`` and ``Image/aligned/*_aligned.jpg``."""
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {c}\n" for n, c in entries))
    for i, (name, _) in enumerate(entries):
        if name not in missing:
            save_image(root / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), value=i)
    return root


def make_affectnet_csv(root: Path, split_file: str, rows: Sequence[tuple[str, int]]) -> Path:
    """AffectNet's ``training.csv``/``validation.csv`` in ``Manually_Annotated_file_lists`` with images."""
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    lines = [AFFECTNET_HEADER] + [f'{path},1,1,4,4,"1.0;2.0;3.0",{code},0.1,-0.2' for path, code in rows]
    (lists / split_file).write_text("\n".join(lines) + "\n")
    for i, (path, _) in enumerate(rows):
        save_image(root / "Manually_Annotated_Images" / path, value=i)
    return lists / split_file


def rafdb_entries(per_code: dict[int, int], split: str = "train", seed: int = 0) -> list[tuple[str, int]]:
    """Shuffled ``(name, code)`` entries with ``per_code[code]`` images per RAF-DB code."""
    codes = [code for code, count in per_code.items() for _ in range(count)]
    random.Random(seed).shuffle(codes)
    return [(f"{split}_{i + 1:05d}.jpg", code) for i, code in enumerate(codes)]
