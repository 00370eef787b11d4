"""Speed of the ONNX export against PyTorch eager: milliseconds per face, side by side in one run.

    python benchmarks/export_speed.py                    # the packaged default model, 2 threads
    python benchmarks/export_speed.py --model runs/x/best.safetensors --threads 4 --batches 1 16 64

The model is exported once (``orsanet.export.export_onnx(..., int8=True)``) into a temporary folder,
then each backend classifies the same face crops (the example photos' faces, framed by the model's
contract, repeated to fill the batch) at each batch size, in three scopes:

- ``network``: the classifier alone, on precomputed raw priors (``landmark_prior``, ``parsing_prior``);
- ``cached``:  ``logits(pixels, geometry)``: normalisation, prior drawing (``MeshPriors.draw``) and
  the classifier, from cached mesh geometry (what training's validation does);
- ``mesh``:    ``logits(pixels)``: the face mesh measured too (two passes of the mesh network plus
  the rotated crops), what ``orsanet predict`` does per face.

Backends: PyTorch eager (``FaceModel``), ONNX Runtime float and int8 (``OnnxFaceModel``; the int8
classifier still measures the mesh with the float mesh graph). Models without a prior backend
(the paper configuration) have the ``network`` scope only. Each figure is the median over timed
runs of at least ``--min-time`` seconds after a warm-up; ratios are PyTorch eager's time divided
by the backend's (above 1: faster than eager).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_pixels(contract, batch: int) -> torch.Tensor:
    """The example photos' faces as the contract frames them, repeated to ``batch`` crops."""
    from orsanet.inference.framing import FaceFinder

    finder = FaceFinder(contract)
    crops = []
    for name in ("astronaut.jpg", "astronaut_masked.jpg"):
        photo = Image.open(EXAMPLES / name).convert("RGB")
        face = finder.best_face(photo)
        if face is not None:
            crops.append(finder.pixels(photo, [face]))
    if not crops:
        sys.exit("no face found in the example photos")
    pixels = torch.cat(crops)
    return pixels.repeat((batch + len(pixels) - 1) // len(pixels), 1, 1, 1)[:batch].contiguous()


def timed(step, faces: int, min_time: float) -> float:
    """Median milliseconds per face of ``step()`` over runs lasting at least ``min_time`` seconds in all."""
    step()  # warm-up
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_time:
        begin = time.perf_counter()
        step()
        times.append(time.perf_counter() - begin)
    return 1000 * statistics.median(times) / faces


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model file (default: the packaged model)")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch and ONNX Runtime (default 2)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64], help="batch sizes (default 1 64)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds of timed runs per figure (default 1)")
    args = parser.parse_args(argv)

    import onnxruntime

    import orsanet
    from orsanet.export import OnnxFaceModel, export_onnx, int8_graph_path
    from orsanet.face_model import FaceModel

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    eager = FaceModel.load(args.model)
    eager.model.eval()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        path = export_onnx(args.model, Path(folder) / "model.onnx", int8=True)
        exported = time.perf_counter() - start
        backends = {"PyTorch eager": eager, "ORT float": OnnxFaceModel(path, threads=args.threads),
                    "ORT int8": OnnxFaceModel(int8_graph_path(path), threads=args.threads)}
        config = eager.model.config
        print(f"model {args.model} ({config.image_backbone}, {config.input_size} px {eager.contract.color}, "
              f"prior backend {eager.model.prior_backend}), {args.threads} threads; orsanet {orsanet.__version__}, "
              f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; export + int8 {exported:.1f} s")
        scopes = ["network", "cached", "mesh"] if eager.priors is not None else ["network"]
        names = list(backends)
        print(f"{'scope':<8} {'batch':>5}  " + "  ".join(f"{name:>22}" for name in names))
        print(f"{'':<8} {'':>5}  " + "  ".join(f"{'ms/face (x eager)':>22}" for _ in names))
        for scope in scopes:
            for batch in args.batches:
                pixels = example_pixels(eager.contract, batch)
                geometry = eager.measure(pixels)
                images, priors = eager.inputs(pixels, geometry)
                cells, base = [], None
                for name, backend in backends.items():
                    if scope == "network":
                        run = ((lambda b=backend: b.model(images, **priors)) if name == "PyTorch eager"
                               else (lambda b=backend: b.run(images, **priors)))
                    elif scope == "cached":
                        run = lambda b=backend: b.logits(pixels, geometry)  # noqa: E731
                    else:
                        run = lambda b=backend: b.logits(pixels)  # noqa: E731
                    ms = timed(run, batch, args.min_time)
                    base = ms if base is None else base
                    cells.append(f"{ms:10.3f} ({base / ms:5.2f}x)")
                print(f"{scope:<8} {batch:>5}  " + "  ".join(f"{cell:>22}" for cell in cells), flush=True)


if __name__ == "__main__":
    main()
