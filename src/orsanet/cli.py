"""The ``orsanet`` command line. ``main(argv)`` is callable from tests."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from orsanet.checkpoint import CheckpointError
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
                      "label_names": metadata.label_names, "preprocessing": metadata.preprocessing,
                      "metrics": metadata.metrics, "provenance": metadata.provenance}, indent=2))
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
    except (CheckpointError, UsageError, LabelError, FileNotFoundError) as error:
        print(f"orsanet: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
