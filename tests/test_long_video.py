"""A long video through ``Recognizer.predict_paths`` (what ``orsanet predict`` runs): 20,000 frames,
memory flat from the first thousand frames to the last (rows are streamed, frames batched and let go)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

FRAMES = 20_000


def resident_mib() -> float:
    """The process's resident memory now (not the peak), from /proc."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_memory_stays_flat_over_a_20000_frame_video(tiny_model, tmp_path):
    import av

    from orsanet.api import Recognizer

    path = tmp_path / "long.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for k in range(FRAMES):
            pixels = np.full((64, 64, 3), (k * 7) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    recognizer = Recognizer(tiny_model, min_face=1000)
    every = 20
    samples = {}
    seen = 0
    for result, _ in recognizer.predict_paths([str(path)], every=every, progress=False):
        seen += 1
        if result.frame is not None and result.frame % 1000 == 0:
            samples[result.frame] = resident_mib()
    assert seen == FRAMES // every and max(samples) >= FRAMES - 1000
    settled = samples[1000]
    growth = max(samples[f] for f in samples if f >= 1000) - settled
    print(f"resident MiB at frames 1000, 10000, {max(samples)}: {settled:.0f}, {samples[10000]:.0f}, {samples[max(samples)]:.0f}")
    assert growth < 25, f"resident memory grew by {growth:.0f} MiB after frame 1000 ({samples})"
