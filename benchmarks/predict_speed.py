"""End-to-end speed of ``orsanet predict`` on this machine: faces per second.

    python benchmarks/predict_speed.py                 # the packaged default model, the example photos
    python benchmarks/predict_speed.py --model runs/x/best.safetensors --repeat 20 --threads 2
    python benchmarks/predict_speed.py --repeat 30      # longer passes: the two-stage pipeline fills once per pass
    python benchmarks/predict_speed.py --min-face 1000     # no search for small faces
    python benchmarks/predict_speed.py --search tiles      # grids of tiles instead of the cascade
    python benchmarks/predict_speed.py --explain           # with the Grad-CAM pictures need
    python benchmarks/predict_speed.py --runtime pytorch   # detectors and priors in PyTorch, not ONNX Runtime
    python benchmarks/predict_speed.py --model model.onnx  # the classifier exported (orsanet export)
    python benchmarks/predict_speed.py --against /tmp/orsanet-old   # side by side with an earlier checkout

Each image is read from disk, its faces detected, framed, the priors measured and the faces
classified, exactly as ``orsanet predict`` does (no files written). The first pass is a warm-up;
the median of ``--runs`` timed passes is reported, with the process's peak resident memory.
``--against DIR`` runs DIR's own copy of this benchmark (an earlier version of orsanet, e.g. a
``git worktree``) in turns with this one, in the same session, and prints the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def measure(args) -> str:
    from orsanet.api import Recognizer

    torch.set_num_threads(args.threads)
    if args.runtime:
        os.environ["ORSANET_RUNTIME"] = args.runtime  # where the detectors and prior networks run (orsanet.onnx_runtime)
    search = {"search": args.search} if args.search else {}  # an earlier version may not know the option
    recognizer = Recognizer(args.model, min_face=args.min_face, batch_size=args.batch_size, **search)
    paths = args.images * args.repeat
    list(recognizer.predict_paths(args.images, explain=args.explain, progress=False))  # warm-up
    times, faces = [], 0
    for _ in range(args.runs):
        start = time.perf_counter()
        results = [result for result, _ in recognizer.predict_paths(paths, explain=args.explain, progress=False)]
        times.append(time.perf_counter() - start)
        faces = sum(len(result.faces) for result in results)
    median = statistics.median(times)
    config = recognizer.info()["config"]
    return (f"model {args.model} ({config['image_backbone']}, {config['input_size']} px), {args.threads} threads, "
            f"runtime {args.runtime or os.environ.get('ORSANET_RUNTIME', 'default')}, "
            f"min face {args.min_face:g} px, search {args.search or 'default'}{', explained' if args.explain else ''}: "
            f"{faces} faces in {len(paths)} images per pass, {median:.2f} s -> {faces / median:.1f} faces/s "
            f"({1000 * median / faces:.0f} ms per face, end to end), "
            f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def faces_per_second(line: str) -> float:
    return float(re.search(r"([\d.]+) faces/s", line).group(1))


def compare(args) -> None:
    """This version and ``args.against``'s, in turns, each in its own process."""
    ours = [sys.executable, __file__, "--model", args.model, "--repeat", str(args.repeat), "--runs", str(args.runs),
            "--threads", str(args.threads), "--min-face", str(args.min_face)] + (["--search", args.search]
                                                                                 if args.search else []) + (
        ["--runtime", args.runtime] if args.runtime else [])
    theirs = [sys.executable, str(Path(args.against) / "benchmarks" / "predict_speed.py"), "--model", args.model,
              "--repeat", str(args.repeat), "--runs", str(args.runs), "--threads", str(args.their_threads),
              "--min-face", str(args.min_face)]
    env_theirs = {**os.environ, "PYTHONPATH": str(Path(args.against) / "src")}
    figures = {"earlier": [], "this": []}
    for turn in range(args.turns):
        for name, command, env in (("earlier", theirs, env_theirs), ("this", ours, dict(os.environ))):
            line = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout.strip()
            line = line.splitlines()[-1]
            figures[name].append(faces_per_second(line))
            print(f"turn {turn + 1}, {name}: {line}", flush=True)
    earlier, this = statistics.median(figures["earlier"]), statistics.median(figures["this"])
    print(f"median of {args.turns} turns: earlier {earlier:.1f} faces/s, this {this:.1f} faces/s, "
          f"ratio this/earlier {this / earlier:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", nargs="+", default=[str(p) for p in sorted(EXAMPLES.glob("*.jpg"))])
    parser.add_argument("--repeat", type=int, default=10, help="each image this many times per pass")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads per stage, as 'orsanet predict --threads' (default 1: detection "
                             "runs in threads beside the classification, which keeps two cores busy)")
    parser.add_argument("--batch-size", type=int, default=8, help="images whose faces are classified together")
    parser.add_argument("--min-face", type=float, default=40,
                        help="as 'orsanet predict --min-face' (the search for small faces costs time)")
    parser.add_argument("--search", choices=("cascade", "tiles"), help="as 'orsanet predict --search' (this version)")
    parser.add_argument("--runtime", choices=("auto", "pytorch", "onnxruntime"),
                        help="where the detectors, prior networks and the classifier run on the CPU (this version; default: auto)")
    parser.add_argument("--explain", action="store_true", help="also compute Grad-CAM, as --save-vis does")
    parser.add_argument("--against", metavar="DIR", help="an earlier orsanet checkout to measure in turns with this one")
    parser.add_argument("--turns", type=int, default=3, help="with --against: turns of each version")
    parser.add_argument("--their-threads", type=int, default=2,
                        help="with --against: the earlier version's threads (its predict used every core: 2 here)")
    args = parser.parse_args()
    if args.against:
        compare(args)
    else:
        print(measure(args))


if __name__ == "__main__":
    main()
