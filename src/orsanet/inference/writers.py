"""Rows written as they come: a crash at frame 90,000 keeps the rows of the first 89,999.

``--json``: ``{"labels": [...], "faces": [`` then one row per line, closed with ``]}`` when the run
ends (a file cut short by a crash still holds every finished row, one JSON object per line);
``--csv``: a header, then one line per row. Both are flushed after every image.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from orsanet.inference.results import ImageResult


def _open_for_writing(path: str | Path):
    path = Path(path)
    if path.is_dir():
        raise OSError(f"{path}: is a folder, not a file")
    return open(path, "w", encoding="utf-8", newline="", errors="surrogateescape")


class RowWriter:
    """Streams ``ImageResult`` rows to a JSON and/or CSV file; use as a context manager."""

    def __init__(self, labels: list[str], json_path: str | Path | None = None, csv_path: str | Path | None = None):
        self.labels = list(labels)
        self._json = self._csv = self._csv_writer = None
        self._first = True
        try:
            if json_path:
                self._json = _open_for_writing(json_path)
                self._json.write('{"labels": ' + json.dumps(self.labels) + ', "faces": [\n')
            if csv_path:
                self._csv = _open_for_writing(csv_path)
                self.columns = ["file", "frame", "face", "x0", "y0", "x1", "y1", "expression", "confidence",
                                *[f"p_{name}" for name in self.labels], "prior_valid", "error"]
                self._csv_writer = csv.DictWriter(self._csv, fieldnames=self.columns)
                self._csv_writer.writeheader()
        except OSError:
            self.close()
            raise

    def write(self, result: ImageResult) -> None:
        self.write_rows(result.rows())

    def write_rows(self, rows: list[dict]) -> None:
        """Rows as ``ImageResult.rows()`` gives them, flushed."""
        for row in rows:
            if self._json is not None:
                self._json.write(("" if self._first else ",\n") + json.dumps(row, ensure_ascii=True))
                self._first = False
            if self._csv_writer is not None:
                box = dict(zip(("x0", "y0", "x1", "y1"), row["box"] or [None] * 4))
                self._csv_writer.writerow({"file": row["file"], "frame": row["frame"], "face": row["face"], **box,
                                           "expression": row["expression"], "confidence": row["confidence"],
                                           **{f"p_{name}": row["probabilities"].get(name) for name in self.labels},
                                           "prior_valid": row["prior_valid"], "error": row["error"]})
        for handle in (self._json, self._csv):
            if handle is not None:
                handle.flush()

    def close(self) -> None:
        if self._json is not None and not self._json.closed:
            self._json.write("\n]}\n")
            self._json.close()
        if self._csv is not None and not self._csv.closed:
            self._csv.close()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def merge_parts(labels: list[str], parts: list[Path], files: list[str], json_path: str | Path | None,
                csv_path: str | Path | None) -> int:
    """The JSON parts of a sharded run (``RowWriter`` files, one per process) -> one JSON/CSV in the
    order of ``files`` (the inputs as one process reads them). Returns the number of rows."""
    position = {file: k for k, file in enumerate(files)}
    rows = []
    for part in parts:
        rows += json.loads(Path(part).read_text(encoding="utf-8", errors="surrogateescape"))["faces"]
    rows.sort(key=lambda row: position.get(row["file"], len(position)))  # stable: frames stay in order
    with RowWriter(labels, json_path, csv_path) as writer:
        writer.write_rows(rows)
    return len(rows)
