"""The ``orsanet`` command line. ``main(argv)`` is callable from tests."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from orsanet.checkpoint import CheckpointError
from orsanet.data.base import DatasetError
from orsanet.engine.config import ConfigError
from orsanet.engine.evaluate import PRIOR_MODES
from orsanet.export import ExportError  # (onnx itself is imported only when a graph is written or run)
from orsanet.labels import LabelError

log = logging.getLogger("orsanet")

SIZES = ("small", "base", "large")


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit code 2."""


def _label_names(spec: str | None, num_classes: int) -> list[str]:
    """Label names from ``--labels``: a dataset order (e.g. ``rafdb``) or comma-separated names."""
    from orsanet import labels

    if spec is None:
        spec = {7: "rafdb", 8: "affectnet8"}.get(num_classes)
        if spec is None:
            raise UsageError(f"--labels is required for a {num_classes}-class model")
        log.warning("no --labels given: assuming the %s label order %s", spec, labels.dataset_label_names(spec))
    names = labels.parse_label_spec(spec)
    if len(names) != num_classes:
        raise UsageError(f"--labels gives {len(names)} names for {num_classes} classes")
    return names


def cmd_convert_official(args: argparse.Namespace) -> int:
    from orsanet.checkpoint import save_model
    from orsanet.official import convert_official

    label_names = _label_names(args.labels, args.num_classes)
    model, report = convert_official(args.source, args.num_classes, args.size, label_names)
    for line in report.summary().splitlines():
        log.info(line)
    save_model(args.destination, model, label_names,
               provenance={"converted_from": str(args.source), "kind": "official ORSANet checkpoint"})
    log.info("wrote %s (ORSANet-%s, %d classes: %s)", args.destination, args.size, args.num_classes,
             ", ".join(label_names))
    return 0


def cmd_assemble(args: argparse.Namespace) -> int:
    from orsanet.checkpoint import save_model
    from orsanet.official import assemble_from_components

    label_names = _label_names(args.labels, args.num_classes)
    model = assemble_from_components(args.ir50, args.mobilefacenet, args.segface, args.num_classes, args.size,
                                     label_names)
    save_model(args.destination, model, label_names,
               provenance={"assembled_from": {"ir50": str(args.ir50), "mobilefacenet": str(args.mobilefacenet),
                                              "segface": str(args.segface)}, "trained": False})
    log.info("wrote %s: untrained ORSANet-%s with pretrained backbone and priors", args.destination, args.size)
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from orsanet.checkpoint import load_model
    from orsanet.models import ORSANet, ORSANetConfig
    from orsanet.profile import format_profile, profile_model

    model = load_model(args.model) if args.model else ORSANet(ORSANetConfig(size=args.size))
    profile = profile_model(model, args.input_size)
    print(format_profile(profile, model))
    if args.json:
        from orsanet.fileio import write_text_atomic

        write_text_atomic(args.json, json.dumps(profile.to_dict(), indent=2))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from orsanet.checkpoint import read_metadata, resolve_model_path

    metadata = read_metadata(args.model)
    print(json.dumps({"file": str(resolve_model_path(args.model)), "config": metadata.config.to_dict(),
                      "label_names": metadata.label_names, "preprocessing": metadata.contract.to_dict(),
                      "prior_backend": metadata.config.prior_backend,
                      "metrics": metadata.metrics, "provenance": metadata.provenance}, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from orsanet.engine.config import load_config
    from orsanet.engine.train import train

    config = load_config(args.config, args.set or [])
    summary = train(config, resume=args.resume, allow_config_change=args.allow_config_change)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_train_priors(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orsanet.priors.occlusion_net_training import PriorNetRecipe, measure_prior_net, train_prior_net

    recipe = PriorNetRecipe(root=args.root, output_dir=args.output_dir, epochs=args.epochs, width=args.width)
    weights = train_prior_net(recipe, resume=args.resume, max_minutes=args.max_minutes)
    if weights.is_file():
        report = measure_prior_net(args.root, weights, limit=args.measure_limit)
        (Path(args.output_dir) / "measured.json").write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from orsanet.engine.evaluate import evaluate

    try:
        occlusion = tuple(float(a) for a in args.occlusion.split(",")) if args.occlusion else ()
    except ValueError:
        raise UsageError(f"--occlusion takes areas such as 0.1,0.2,0.3, got {args.occlusion!r}") from None
    if any(not 0 < a < 1 for a in occlusion):
        raise UsageError(f"--occlusion areas must lie between 0 and 1, got {args.occlusion}")
    report = evaluate(args.model, args.data, args.kind, args.split, args.subset, args.label_mode, args.batch_size,
                      args.workers, args.device, occlusion, args.json, flip=args.flip, crop=args.crop,
                      min_face=args.min_face, per_image=args.per_image, backend=args.backend, priors=args.priors,
                      **_speed(args))
    print(f"{report['num_images']} images: accuracy {report['accuracy']:.4f}, mean class accuracy "
          f"{report['mean_class_accuracy']:.4f}, macro-F1 {report['macro_f1']:.4f}, ECE {report['ece']:.4f}")
    if report["dataset"]["images_without_face"]:
        print(f"no face found in {len(report['dataset']['images_without_face'])} images (left out; listed in the report)")
    for area, figures in report.get("occlusion", {}).items():
        print(f"occlusion {float(area):.0%}: accuracy {figures['accuracy']:.4f}, "
              f"mean class accuracy {figures['mean_class_accuracy']:.4f}")
    return 0


def cmd_occlude(args: argparse.Namespace) -> int:
    from orsanet.occlusion.dataset import OcclusionTreeError, occlude_tree

    if args.area is not None and not 0 < args.area < 1:
        raise UsageError(f"--area must lie between 0 and 1, got {args.area}")
    try:
        summary = occlude_tree(args.data, args.out, args.kind, args.seed, area=args.area, split=args.split,
                               overwrite=args.overwrite, batch_size=args.batch_size, device=args.device)
    except OcclusionTreeError as error:
        raise UsageError(str(error)) from None
    print(f"{summary['occluded']} images occluded with {summary['kind']} (face mesh fitted on "
          f"{summary['faces_fitted']}), {len(summary['unreadable_images'])} unreadable copied unchanged, "
          f"{summary['files_copied']} files copied; manifest {summary['manifest']}")
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from orsanet.engine.robustness import (RobustnessError, format_table, parse_settings, plot_report,
                                           plot_sensitivity_report, robustness)
    from orsanet.fileio import write_text_atomic
    from orsanet.occlusion import REGIONS

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    try:
        settings = parse_settings(args.settings)
        if args.sensitivity and not any(s.kind in REGIONS and not s.params for s in settings):
            raise UsageError("--sensitivity needs region settings (eyes, brows, nose, mouth, upper, lower, left, "
                             "right)")
        report = robustness(args.models, args.data, args.kind, args.split, [s.name for s in settings], args.seed,
                            args.limit, args.batch_size, args.device, args.label_mode)
    except RobustnessError as error:
        raise UsageError(str(error)) from None
    print(format_table(report))
    if args.json:
        write_text_atomic(args.json, json.dumps(report, indent=2))
        log.info("wrote %s", args.json)
    if args.plot:
        plot_report(report, args.plot)
        log.info("wrote %s", args.plot)
    if args.sensitivity:
        plot_sensitivity_report(report, args.sensitivity)
        log.info("wrote %s", args.sensitivity)
    return 0


def _speed(args: argparse.Namespace) -> dict:
    """The PyTorch speed options of predict / eval (``FaceModel``), refused for an ONNX graph."""
    options = {name: True for name in ("amp", "channels_last", "compile") if getattr(args, name)}
    if options and (args.backend == "onnxruntime" or (args.backend == "auto" and str(args.model).endswith(".onnx"))):
        raise UsageError(f"--{next(iter(options)).replace('_', '-')} applies to the PyTorch backend, not to ONNX graphs")
    return options


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and the PyTorch speed options, shared by eval and predict."""
    parser.add_argument("--backend", choices=("auto", "pytorch", "onnxruntime"), default="auto",
                        help="pytorch (a model file; predict runs its network on ONNX Runtime on the CPU where installed, "
                             "unless ORSANET_RUNTIME=pytorch), or onnxruntime for a graph written by 'orsanet export' "
                             "(default auto: by the file's suffix)")
    parser.add_argument("--amp", action="store_true", help="CUDA: bf16 autocast (fp16 without bf16)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last images and weights")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (slow first batch)")


def _print_result(result) -> None:
    """The predict table's lines for one image or frame: a line per face, or one saying why there is none."""
    name = result.file.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # any file name prints
    name = name if len(name) <= 40 else "…" + name[-39:]
    frame = "" if result.frame is None else str(result.frame)
    if result.error or not result.faces:
        print(f"{name:40s} {frame:>5s} {'-':>4s}  {result.error or 'no face found'}", flush=True)
    for face in result.faces:
        box = ",".join(f"{v:.0f}" for v in face.box)
        print(f"{name:40s} {frame:>5s} {face.index:>4d}  {face.expression:12s} {face.confidence:5.2f}  {box}"
              + ("" if face.prior_valid else "  (no prior)"), flush=True)


def picture_names(files: list) -> dict[str, str]:
    """A picture name stem per input file, unique in the run (``flat``, then ``flat_2`` for a second
    ``flat.jpg`` in another folder), the same whichever process of a sharded run draws it."""
    from pathlib import Path

    names, taken = {}, set()
    for file in files:
        stem, copy = Path(file).stem[:100], 1
        name = stem
        while name in taken:
            copy += 1
            name = f"{stem}_{copy}"
        taken.add(name)
        names[str(file)] = name
    return names


def cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from orsanet.api import Recognizer
    from orsanet.engine.distributed import init_distributed
    from orsanet.fileio import atomic_path
    from orsanet.inference.inputs import expand_inputs
    from orsanet.inference.writers import RowWriter, merge_parts

    if args.every < 1:
        raise UsageError(f"--every must be at least 1, got {args.every}")
    if args.min_face <= 0:
        raise UsageError(f"--min-face must be positive, got {args.min_face}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    # One thread per stage: measured faster on 2 cores than two threads each (benchmarks/predict_speed.py)
    torch.set_num_threads(args.threads or 1)
    recognizer = Recognizer(args.model, args.device, flip=args.flip, min_face=args.min_face, search=args.search,
                            min_confidence=args.min_confidence, batch_size=args.batch_size, backend=args.backend,
                            **_speed(args))
    if args.save_vis and args.backend != "pytorch" and not hasattr(recognizer.face_model, "model"):
        raise UsageError("--save-vis draws Grad-CAM, which needs the PyTorch backend (a model file, not .onnx)")
    out_dir = Path(args.save_vis) if args.save_vis else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"--save-vis {out_dir}: cannot make the folder ({error.strerror or error})") from None
    # Under torchrun each process takes every world_size-th file and writes its own part; rank 0 merges.
    context = init_distributed(recognizer.device)
    if context.enabled and args.csv and not args.json:
        raise UsageError("a sharded predict needs --json as well as --csv (the processes' parts are merged from it)")
    part = (lambda path: f"{path}.part{context.rank}" if path else None) if context.enabled else (lambda path: path)
    try:
        writer = RowWriter(recognizer.labels, part(args.json), part(args.csv) if not context.enabled else None)
    except OSError as error:
        raise UsageError(f"cannot write the results: {error}") from None
    files = [str(p) for p in expand_inputs(args.paths, out_dir)]
    names = picture_names(files)
    faces = readable = 0
    if context.is_main:
        print(f"{'file':40s} {'frame':>5s} {'face':>4s}  {'expression':12s} {'prob':>5s}  box")
    with writer:
        for result, image in recognizer.predict_paths(files, args.every, explain=out_dir is not None,
                                                      shard=(context.rank, context.world_size),
                                                      progress=context.is_main):  # folders walked once, above
            writer.write(result)
            _print_result(result)
            faces += len(result.faces)
            if image is None:
                continue
            readable += 1
            if out_dir is not None:
                name = names.get(result.file, Path(result.file).stem[:100])
                name += f"_frame{result.frame:06d}.png" if result.frame is not None else ".png"
                with atomic_path(out_dir / name) as temporary:
                    recognizer.annotate(image, result.faces).save(temporary, format="PNG")
    if context.enabled:
        counts = context.all_reduce_sum(torch.tensor([faces, readable], dtype=torch.long))
        faces, readable = int(counts[0]), int(counts[1])
        context.barrier()
        if context.is_main and (args.json or args.csv):
            parts = [f"{args.json}.part{rank}" for rank in range(context.world_size)]
            merge_parts(recognizer.labels, [Path(p) for p in parts], files, args.json, args.csv)
            for p in parts:
                Path(p).unlink()
        context.barrier()
    if context.is_main:
        log.info("%d faces in %d readable images/frames", faces, readable)
    if readable == 0:
        if context.is_main:
            print("orsanet: error: nothing could be read", file=sys.stderr)
        return 1
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from orsanet.export import ExportError, export_onnx, int8_graph_path, mesh_graph_path, prior_graph_path
    except ImportError as error:
        raise UsageError(f"orsanet export needs the 'export' extra: pip install 'orsanet[export]' ({error})") from None
    try:
        out = export_onnx(args.model, args.out, opset=args.opset, int8=args.int8 or bool(args.calibration),
                          calibration_data=args.calibration, calibration_count=args.calibration_count,
                          calibration_method=args.calibration_method)
    except ImportError as error:
        raise UsageError(f"orsanet export needs the 'export' extra: pip install 'orsanet[export]' ({error})") from None
    except ExportError as error:
        raise UsageError(str(error)) from None
    written = [out] + [p for p in (mesh_graph_path(out), prior_graph_path(out), int8_graph_path(out)) if p.exists()]
    for path in written:
        log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from orsanet.serve import run
    except ImportError as error:
        raise UsageError(f"orsanet serve needs the 'serve' extra: pip install 'orsanet[serve]' ({error.name} missing)") \
            from None
    limits = {name: getattr(args, name) for name in ("max_upload_mb", "max_pixels", "max_video_frames",
                                                     "request_timeout_s", "max_queue", "max_batch")}
    for name, value in limits.items():
        if value <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    run(args.host, args.port, args.model, args.device, **limits)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orsanet", description="Occlusion-robust facial expression recognition")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    labels_help = "label order: a dataset name (rafdb, ferplus, fer2013, affectnet7, affectnet8) or comma-separated names"
    convert = commands.add_parser("convert-official", help="convert an official ORSANet checkpoint to orsanet's format")
    convert.add_argument("source", help="official .pth (training checkpoint or bare state dict)")
    convert.add_argument("destination", help="output .safetensors file")
    convert.add_argument("--num-classes", type=int, required=True)
    convert.add_argument("--size", choices=SIZES, default="large")
    convert.add_argument("--labels", help=labels_help)
    convert.set_defaults(handler=cmd_convert_official)

    assemble = commands.add_parser("assemble", help="untrained paper model from the authors' pretrained component files")
    assemble.add_argument("destination", help="output .safetensors file")
    assemble.add_argument("--ir50", required=True, help="ir50.pth")
    assemble.add_argument("--mobilefacenet", required=True, help="mobilefacenet_model_best.pth.tar")
    assemble.add_argument("--segface", required=True, help="SegFace model_299.pt")
    assemble.add_argument("--num-classes", type=int, required=True)
    assemble.add_argument("--size", choices=SIZES, default="large")
    assemble.add_argument("--labels", help=labels_help)
    assemble.set_defaults(handler=cmd_assemble)

    profile = commands.add_parser("profile", help="parameters and multiply-accumulates per component")
    profile.add_argument("--size", choices=SIZES, default="large")
    profile.add_argument("--model", help="profile this model file instead of the paper configuration")
    profile.add_argument("--input-size", type=int, default=None)
    profile.add_argument("--json", help="also write the figures to this JSON file")
    profile.set_defaults(handler=cmd_profile)

    train = commands.add_parser("train", help="train a model (YAML config, --set overrides, --resume)")
    train.add_argument("--config", help="YAML file (see configs/)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. optim.lr=1e-4")
    train.add_argument("--resume", action="store_true", help="continue the run in run.output_dir")
    train.add_argument("--allow-config-change", action="store_true",
                       help="with --resume: continue even though the config differs from the run's")
    train.set_defaults(handler=cmd_train)

    priors = commands.add_parser("train-priors", help="train the occlusion-aware prior network on FERPlus "
                                 "(targets: the clean face's mesh priors and the occluder masks), then measure it")
    priors.add_argument("root", help="FERPlus folder")
    priors.add_argument("--output-dir", default="runs/occlusion-priors")
    priors.add_argument("--epochs", type=int, default=3)
    priors.add_argument("--width", type=int, default=24)
    priors.add_argument("--max-minutes", type=float, default=None, help="stop (resumably) after this many minutes")
    priors.add_argument("--measure-limit", type=int, default=None, help="measure on the first N Valid faces only")
    priors.add_argument("--resume", action="store_true", help="continue the run in --output-dir")
    priors.set_defaults(handler=cmd_train_priors)

    evaluate = commands.add_parser("eval", help="evaluate a model file on a dataset split")
    evaluate.add_argument("model", help="model file, or 'default'")
    evaluate.add_argument("data", help="dataset root")
    evaluate.add_argument("--kind", default="auto",
                          help="dataset kind: auto (default: told by its files), ferplus, fer2013, rafdb, affectnet7, "
                               "affectnet8 or folder")
    evaluate.add_argument("--split", default=None,
                          help="split to evaluate (default: test; a folder tree without test/ is read whole)")
    evaluate.add_argument("--crop", choices=("none", "detect"), default="none",
                          help="none: the images are face crops; detect: find and frame the face as predict does")
    evaluate.add_argument("--min-face", type=float, default=20.0, metavar="PX",
                          help="with --crop detect: the smallest face to search for (default 20)")
    evaluate.add_argument("--per-image", action="store_true", help="also write every image's probabilities (--json)")
    _add_runtime_options(evaluate)
    evaluate.add_argument("--subset", help="text file of image names (name [label [condition]])")
    evaluate.add_argument("--label-mode", default="majority", help="FERPlus: majority or argmax")
    evaluate.add_argument("--occlusion", help="also under random-square occlusion of these areas, e.g. 0.1,0.2,0.3")
    evaluate.add_argument("--flip", action="store_true",
                          help="test-time augmentation: average each face's prediction with its mirror image's")
    evaluate.add_argument("--priors", choices=PRIOR_MODES, default="measured",
                          help="ablation: give the model no priors (empty), another face's (shuffled, the previous "
                               "face of the batch) or its own with the face blanked (only) instead of its own "
                               "(measured, the default)")
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--workers", type=int, default=2)
    evaluate.add_argument("--device", default="cpu")
    evaluate.add_argument("--json", help="write the report here (and a confusion-matrix PNG beside it)")
    evaluate.set_defaults(handler=cmd_eval)

    occlude_cmd = commands.add_parser("occlude",
                                      help="write an occluded copy of a dataset tree (same layout and labels)")
    occlude_cmd.add_argument("data", help="dataset root (every file under it is mirrored)")
    occlude_cmd.add_argument("out", help="output folder (must be empty or absent, and outside DATA)")
    occlude_cmd.add_argument("--kind", required=True,
                             help="occlusion kind or group: square_black, square_mean, eyes, brows, nose, mouth, "
                                  "upper, lower, left, right, medical_mask, sunglasses, hand, ..., square, regions, "
                                  "realistic")
    occlude_cmd.add_argument("--area", type=float, default=None,
                             help="square kinds: area fraction of the image (default: uniform in 0.1..0.4)")
    occlude_cmd.add_argument("--seed", type=int, default=0, help="base seed (each image's seed comes from its path)")
    occlude_cmd.add_argument("--split", default=None, help="only this split folder (e.g. test, FER2013Test)")
    occlude_cmd.add_argument("--overwrite", action="store_true", help="write into a non-empty OUT")
    occlude_cmd.add_argument("--batch-size", type=int, default=64, help="images whose face mesh is fitted together")
    occlude_cmd.add_argument("--device", default="cpu")
    occlude_cmd.set_defaults(handler=cmd_occlude)

    robust = commands.add_parser("robustness",
                                 help="models and peers on the clean split and under every occlusion setting")
    robust.add_argument("models", nargs="+", metavar="MODEL",
                        help="model file, 'default', or a peer: peer:fer-mini-xception, peer:face-api-expression; "
                             "empty-priors:MODEL / shuffled-priors:MODEL / priors-only:MODEL: MODEL given no priors, "
                             "another face's, or its own with the face blanked")
    robust.add_argument("data", help="dataset root")
    robust.add_argument("--kind", default="auto", help="dataset kind (default auto)")
    robust.add_argument("--split", default=None, help="split (default: test; a flat class tree is read whole)")
    robust.add_argument("--settings", default=None,
                        help="comma list of kind or kind@area (default: square_mean@0.1,0.2,0.3, square_black@0.2, "
                             "the 8 regions, medical_mask, sunglasses, hand, hair, scarf, microphone)")
    robust.add_argument("--seed", type=int, default=0)
    robust.add_argument("--limit", type=int, default=None,
                        help="evaluate N images (each class keeps its share; the first of each class)")
    robust.add_argument("--label-mode", default="majority", help="FERPlus: majority or argmax")
    robust.add_argument("--batch-size", type=int, default=64)
    robust.add_argument("--device", default="cpu")
    robust.add_argument("--json", help="write every figure here")
    robust.add_argument("--plot", help="PNG: accuracy against occlusion for every model")
    robust.add_argument("--sensitivity", help="PNG: per-model heat map of the recall drop per region and class")
    robust.set_defaults(handler=cmd_robustness)

    predict = commands.add_parser("predict", help="expression of every face in images, folders and videos")
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursive) or videos")
    predict.add_argument("--model", default="default", help="model file, or 'default' (the packaged model)")
    predict.add_argument("--every", type=int, default=10, help="videos: classify every N-th frame (default 10)")
    predict.add_argument("--json", help="write one row per face to this JSON file")
    predict.add_argument("--csv", help="write one row per face to this CSV file")
    predict.add_argument("--save-vis", metavar="DIR", help="write annotated images here")
    predict.add_argument("--min-confidence", type=float, default=0.5, help="face detector threshold")
    predict.add_argument("--min-face", type=float, default=40, metavar="PX",
                         help="smallest face to search for, in pixels of the photo (default 40; smaller is slower)")
    predict.add_argument("--search", choices=("cascade", "tiles"), default="cascade",
                         help="small faces: 'cascade' (the full-range detector proposes where to look again; "
                         "default) or 'tiles' (grids of tiles over the whole photo; slower)")
    predict.add_argument("--flip", action="store_true",
                         help="test-time augmentation: average each face's prediction with its mirror image's")
    predict.add_argument("--batch-size", type=int, default=8, help="images or frames classified together")
    predict.add_argument("--threads", type=int, default=None,
                         help="CPU threads of each stage (default 1: reading and detecting the next pictures "
                              "run in threads beside the classification, which keeps two cores busy)")
    _add_runtime_options(predict)
    predict.add_argument("--device", default="cpu")
    predict.set_defaults(handler=cmd_predict)

    export = commands.add_parser("export", help="ONNX graphs of a model (and of the face mesh it needs), optionally int8")
    export.add_argument("model", help="model file, or 'default'")
    export.add_argument("out", help="output .onnx file (the mesh or prior-network graph goes beside it as "
                        "<name>.mesh.onnx / <name>.priors.onnx)")
    export.add_argument("--opset", type=int, default=17)
    export.add_argument("--int8", action="store_true", help="also a statically quantised <name>.int8.onnx")
    export.add_argument("--calibration", metavar="DATA", help="calibrate the int8 graph on faces of this dataset's "
                        "validation split (e.g. FERPlus) instead of generated faces; implies --int8")
    export.add_argument("--calibration-count", type=int, default=512, metavar="N",
                        help="faces drawn (seeded) for --calibration (default 512)")
    export.add_argument("--calibration-method", choices=("minmax", "percentile"), default="minmax",
                        help="activation ranges of the int8 graph (default minmax: the better one for the default "
                             "model, see docs/model-card.md)")
    export.set_defaults(handler=cmd_export)

    serve = commands.add_parser("serve", help="REST API and web page (photos, live camera) on this machine")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model", default="default", help="model file, or 'default'")
    serve.add_argument("--device", default="cpu")
    serve.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload (default 20 MB)")
    serve.add_argument("--max-pixels", type=int, default=25_000_000, help="largest image or frame (default 25 MP)")
    serve.add_argument("--max-video-frames", type=int, default=64, help="most sampled frames of a video (default 64)")
    serve.add_argument("--request-timeout-s", type=float, default=30.0, help="answer within (default 30 s)")
    serve.add_argument("--max-queue", type=int, default=16, help="requests waiting for the model (then 503)")
    serve.add_argument("--max-batch", type=int, default=8, help="pictures per model call (concurrent requests)")
    serve.set_defaults(handler=cmd_serve)

    info = commands.add_parser("info", help="show a model file's metadata (config, labels, metrics)")
    info.add_argument("model", help="model file, or 'default'")
    info.set_defaults(handler=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except (CheckpointError, ConfigError, DatasetError, LabelError, UsageError, FileNotFoundError,
            ExportError) as error:
        print(f"orsanet: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
