"""The paper configuration of ORSANet in orsanet against the authors' own code, side by side in one run.

    /tmp/authorsvenv/bin/python benchmarks/paper_vs_authors.py --threads 2
    /tmp/authorsvenv/bin/python benchmarks/paper_vs_authors.py --faces ../shared/data/ferplus/FER2013Test --threads 2
    /tmp/authorsvenv/bin/python benchmarks/paper_vs_authors.py --batches 1 --runs 2 --threads 1   # quick look

``--authors`` (default /tmp/authors/ORSANet-master) is a copy of the authors' repository
(github.com/Wenyuzhy/ORSANet-master) patched only to skip its pretrained-weight files and
torchvision's ImageNet download; its ``utils.py`` imports scikit-learn and matplotlib, so run this
with a Python that has them (e.g. a venv with the repo's packages plus scikit-learn). The folder
goes on ``sys.path`` only inside this script.

The authors' ``ORSA(type="large")`` (7 classes, seeded random initialisation, eval mode) gives its
``state_dict()`` to ``orsanet.models.ORSANet(ORSANetConfig(size="large"))`` through
``orsanet.official.map_official_keys``, so both hold the same weights; the logits of the two are
compared first. Then every path classifies the same images at each ``--batches`` size:

- ``authors``: the authors' model, eager fp32 under ``torch.no_grad`` (as their test.py runs it);
- ``eager``: orsanet's model, the same way;
- ``inference_mode``: orsanet under ``torch.inference_mode``;
- ``channels_last``: orsanet with channels-last weights and images (``FaceModel(channels_last=True)``), inference mode;
- ``compile`` (``--compile``): ``torch.compile`` of orsanet's model (its first pass compiles);
- ``ort float``: ``orsanet.export.export_onnx`` of the model on ONNX Runtime (``OnnxFaceModel.run``);
- ``ort int8``: that graph after ``orsanet.export.quantize_int8`` (calibrated on ``--calibration``
  faces of ``--faces``, else on generated faces; the quantisation takes minutes, ``--no-int8`` skips it).

Images are 224-px crops (the model's input contract; IR-50 and MobileFaceNet resize them to 112 inside,
Swin-B reads them as they are): FERPlus
test faces from ``--faces`` (grey, turned RGB and resized as the contract does) or seeded random
tensors. Figures: median milliseconds per image over ``--runs`` timed passes after a warm-up,
the authors' time divided by the path's (above 1: faster than the authors' code), and the
path's top-1 agreement and largest logit difference with the authors' fp32 logits on the same batch.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from orsanet.contract import InputContract
from orsanet.labels import RAFDB_LABELS
from orsanet.models import ORSANet, ORSANetConfig
from orsanet.official import map_official_keys
from orsanet.weight_loading import load_weights

log = logging.getLogger("paper_vs_authors")
NUM_CLASSES = 7  # the authors' default (RAF-DB)


def authors_model(folder: Path, seed: int) -> torch.nn.Module:
    """The authors' ORSA-large from their code at ``folder``, randomly initialised with ``seed``."""
    if not (folder / "models" / "net.py").is_file():
        sys.exit(f"{folder}: no models/net.py (a copy of Wenyuzhy/ORSANet-master is needed, see --authors)")
    sys.path.insert(0, str(folder))
    try:
        from models.net import ORSA
    except ImportError as error:
        sys.exit(f"cannot import the authors' code from {folder}: {error} "
                 "(their utils.py needs scikit-learn and matplotlib)")
    torch.manual_seed(seed)
    return ORSA(img_size=224, num_classes=NUM_CLASSES, type="large").eval()


def orsanet_twin(authors: torch.nn.Module) -> tuple[ORSANet, str]:
    """orsanet's paper configuration holding the authors' weights, and a line on the key mapping."""
    official = authors.state_dict()
    state, report = map_official_keys(official, "authors' state_dict")
    model = ORSANet(ORSANetConfig(num_classes=NUM_CLASSES, size="large"), list(RAFDB_LABELS))
    load_weights(model, state, "authors' state_dict")
    skipped = sum(len(keys) for keys in report.skipped.values())
    return model.eval(), f"{len(official)} keys of the authors' state_dict: {report.mapped} mapped, {skipped} unused"


def face_pixels(folder: Path, contract: InputContract, count: int, seed: int) -> torch.Tensor:
    """``count`` face images of ``folder`` (seeded pick) as the contract frames them: ``(count, 3, S, S)`` in [0, 1]."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if len(files) < count:
        sys.exit(f"{folder}: {len(files)} images, {count} needed")
    picked = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    return torch.stack([contract.pixels(Image.open(files[i])) for i in picked])


def timed(step, images: torch.Tensor, runs: int) -> tuple[float, torch.Tensor]:
    """(median ms per image over ``runs`` passes after a warm-up, the warm-up's logits)."""
    logits = step(images).float()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step(images)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times) / len(images), logits


def torch_path(model: torch.nn.Module, mode, channels_last: bool = False, authors: bool = False):
    """A step ``images -> logits`` running ``model`` under ``mode`` (``torch.no_grad`` / ``torch.inference_mode``)."""
    def step(images: torch.Tensor) -> torch.Tensor:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with mode():
            out = model(images)
        return out[0] if authors else out.logits
    return step


def fast_paths(model: ORSANet, args, folder: Path, calibration: torch.Tensor | None, source: str | None):
    """orsanet's fast paths by name; a path that cannot be set up is logged and left out (name -> error)."""
    paths, failed = {"eager": torch_path(model, torch.no_grad),
                     "inference_mode": torch_path(model, torch.inference_mode)}, {}
    twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
    paths["channels_last"] = torch_path(twin, torch.inference_mode, channels_last=True)
    if args.compile:
        paths["compile"] = torch_path(torch.compile(model), torch.inference_mode)
    if args.no_onnx:
        return paths, failed
    from orsanet.checkpoint import save_model
    from orsanet.export import OnnxFaceModel, export_onnx, quantize_int8

    def ort_path(graph: Path):
        session = OnnxFaceModel(graph, threads=args.threads)
        return lambda images: session.run(images)

    try:
        start = time.perf_counter()
        graph = export_onnx(save_model(folder / "paper.safetensors", model), folder / "paper.onnx")
        log.info("exported to ONNX in %.0f s (%.0f MB)", time.perf_counter() - start, graph.stat().st_size / 2**20)
        paths["ort float"] = ort_path(graph)
    except Exception as error:  # noqa: BLE001 - report the path as failed, measure the others
        log.warning("ort float: %s", error)
        failed["ort float"] = f"{type(error).__name__}: {error}"
        return paths, failed
    if args.no_int8:
        return paths, failed
    try:
        start = time.perf_counter()
        int8 = quantize_int8(graph, calibration=calibration, count=args.calibration, source=source)
        log.info("quantised to int8 in %.0f s (%.0f MB)", time.perf_counter() - start, int8.stat().st_size / 2**20)
        paths["ort int8"] = ort_path(int8)
    except Exception as error:  # noqa: BLE001
        log.warning("ort int8: %s", error)
        failed["ort int8"] = f"{type(error).__name__}: {error}"
    return paths, failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors", type=Path, default=Path("/tmp/authors/ORSANet-master"),
                        help="the authors' code (default /tmp/authors/ORSANet-master)")
    parser.add_argument("--faces", type=Path, help="a folder of face images (e.g. FERPlus FER2013Test); "
                        "default: seeded random tensors")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="batch sizes (default 1 8)")
    parser.add_argument("--runs", type=int, default=5, help="timed passes per figure after a warm-up (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="threads for PyTorch and ONNX Runtime (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of the inputs (default 0)")
    parser.add_argument("--calibration", type=int, default=8,
                        help="faces that calibrate the int8 graph (default 8; min-max calibration keeps every "
                             "activation of every face in memory, a few hundred MB each for this model)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime paths")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)

    import orsanet

    log.info("building the authors' model from %s", args.authors)
    authors = authors_model(args.authors, args.seed)
    model, mapping = orsanet_twin(authors)
    contract = InputContract(model.config.input_size)
    largest = max(args.batches)
    calibration = source = None
    if args.faces is not None:  # the int8 graph is calibrated on other faces than the measured ones
        pixels = face_pixels(args.faces, contract, largest + args.calibration, args.seed)
        images, calibration = contract.normalise(pixels[:largest]), pixels[largest:]
        described = f"{largest} faces of {args.faces} (seeded pick), RGB, {contract.input_size} px"
        source = f"{args.calibration} other faces of {args.faces}"
    else:
        size = contract.input_size
        images = torch.randn(largest, 3, size, size, generator=torch.Generator().manual_seed(args.seed))
        described = f"{largest} seeded random tensors"
    with torch.no_grad():
        official = authors(images)[0]
        difference = (official - model(images).logits).abs().max().item()
    classes = official.argmax(1).unique().numel()

    with tempfile.TemporaryDirectory() as folder:
        paths, failed = fast_paths(model, args, Path(folder), calibration, source)
        try:
            import onnxruntime
            ort_version = onnxruntime.__version__
        except ImportError:
            ort_version = "-"
        print(f"ORSANet-large, paper configuration ({model.config.image_backbone}, {model.config.landmark_source}, "
              f"{model.config.parsing_source}), {NUM_CLASSES} classes, {contract.input_size} px; {args.threads} "
              f"thread(s); torch {torch.__version__}, onnxruntime {ort_version}, orsanet {orsanet.__version__}")
        print(f"weights: seeded ({args.seed}) random init of the authors' code; {mapping}")
        print(f"inputs: {described}")
        print(f"logits, orsanet eager vs the authors' code: max |difference| {difference:.2e} ({largest} images; "
              f"the authors' top-1 spans {classes} of {NUM_CLASSES} classes)")
        print(f"{'path':<16} {'batch':>5} {'ms/image':>10} {'authors/ours':>13} {'top-1 agree':>12} "
              f"{'max |dlogit|':>13}")
        for batch in args.batches:
            batch_images = images[:batch].contiguous()
            log.info("batch %d: authors' code", batch)
            reference_ms, reference = timed(torch_path(authors, torch.no_grad, authors=True), batch_images, args.runs)
            print(f"{'authors':<16} {batch:>5} {reference_ms:>10.1f} {1:>13.2f} {'-':>12} {'-':>13}", flush=True)
            top1 = reference.argmax(1)
            for name, step in paths.items():
                log.info("batch %d: %s", batch, name)
                ms, logits = timed(step, batch_images, args.runs)
                agree = (logits.argmax(1) == top1).sum().item()
                gap = (logits - reference).abs().max().item()
                print(f"{name:<16} {batch:>5} {ms:>10.1f} {reference_ms / ms:>13.2f} {f'{agree}/{batch}':>12} "
                      f"{gap:>13.2e}", flush=True)
        for name, error in failed.items():
            print(f"{name}: failed ({error})")


if __name__ == "__main__":
    main()
