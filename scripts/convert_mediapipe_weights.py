#!/usr/bin/env python3
"""Convert MediaPipe 0.10.21's face models (.tflite) to safetensors for ``orsanet.priors``.

Reads ``face_detection_short_range.tflite`` (BlazeFace, 128 px),
``face_detection_full_range_sparse.tflite`` (BlazeFace full range, 192 px) and
``face_landmark.tflite`` (468-point face mesh, 192 px) from an installed ``mediapipe==0.10.21``
(or a folder given with ``--mediapipe-dir``) and writes, under ``src/orsanet/priors/weights/``:

- ``face_detector.safetensors``  keys of :class:`orsanet.priors.face_detector.BlazeFaceNet`
- ``face_detector_full_range.safetensors`` keys of
  :class:`orsanet.priors.face_detector_full_range.BlazeFaceFullRangeNet`. The wheel ships only
  the *sparse* full-range model (the one its ``FaceDetectionFullRangeCpu`` graph runs); its
  sparse (CSR) constants are densified here.
- ``face_landmarks.safetensors`` keys of :class:`orsanet.priors.face_mesh.FaceMeshNet`, plus
  ``flip_permutation`` (int64, 468): the mesh index of each point's mirror image.
- ``NOTICE``: the Apache-2.0 attribution.

Run it where mediapipe is installed, e.g. a throw-away venv (mediapipe pins numpy<2)::

    python3 -m venv /tmp/mpvenv
    /tmp/mpvenv/bin/pip install mediapipe==0.10.21 'numpy<2' 'protobuf<5' tflite safetensors
    /tmp/mpvenv/bin/python scripts/convert_mediapipe_weights.py

Needs only numpy, ``tflite`` (the flatbuffer schema; it pulls in ``flatbuffers``) and
``safetensors``; mediapipe itself is never imported, only located.

How the graph is read: rather than trusting tensor names, every network output is traced
backwards through the op graph and decomposed into the few patterns these BlazeNet-style
models are made of (``act(conv(x))`` and residual blocks ``act(shortcut(x) + pw(dw(x)))``
with a max-pool / zero channel-pad shortcut). The chains shared by all outputs form the
backbone; what remains are the heads. Every shape is checked against the PyTorch layout.
The full-range detector has its own patterns (explicitly padded double depthwise-separable
units, a top-down FPN with bilinear upsampling, depth-to-space heads): see
:func:`convert_full_range`.

Weight layouts: TFLite CONV_2D kernels are OHWI -> PyTorch OIHW; DEPTHWISE_CONV_2D kernels are
1HWC -> (C, 1, H, W); PRELU alphas (1, 1, C) -> (C,). The models store float16 constants behind
DEQUANTIZE ops; int8/uint8 constants (scale, zero point) are handled too. Values are kept in
float16 (lossless for these files) to keep the package small.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger("convert_mediapipe_weights")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "orsanet" / "priors" / "weights"
DETECTOR_FILE = "modules/face_detection/face_detection_short_range.tflite"
FULL_RANGE_FILE = "modules/face_detection/face_detection_full_range_sparse.tflite"
LANDMARK_FILE = "modules/face_landmark/face_landmark.tflite"
EXPECTED_MEDIAPIPE = "0.10.21"

# Facts about MediaPipe's canonical face model (canonical_face_model.obj, Apache-2.0): its 468
# vertices are symmetric in x. The 28 indices below lie on the mid-sagittal line (x = 0); the
# other 220 indices below 248 are one side of the face, and indices 248..467 are their mirror
# images, listed in the same order.
MESH_MIDLINE = (0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                94, 151, 152, 164, 168, 175, 195, 197, 199, 200)
MESH_POINTS = 468


# ----------------------------------------------------------------------------- TFLite graph
@dataclass
class Op:
    """One TFLite operator: builtin name, tensor ids, and parsed options."""

    index: int
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


class TFLiteGraph:
    """Minimal read-only view of subgraph 0 of a .tflite flatbuffer."""

    def __init__(self, path: Path):
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator
        from tflite.TensorType import TensorType

        self._tflite = tflite
        self.path = path
        self.raw = path.read_bytes()
        self.model = tflite.Model.GetRootAsModel(self.raw, 0)
        self.graph = self.model.Subgraphs(0)
        op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
        self._type_names = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
        self.ops: list[Op] = []
        for k in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            kind = op_names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(i) for i in op.OutputsAsNumpy()]
            self.ops.append(Op(k, kind, ins, outs, self._options(kind, op)))
        self.producer = {t: op for op in self.ops for t in op.outputs}
        self.inputs = [int(i) for i in self.graph.InputsAsNumpy()]
        self.outputs = [int(i) for i in self.graph.OutputsAsNumpy()]

    def _options(self, kind: str, op) -> dict:
        tfl = self._tflite
        table = op.BuiltinOptions()
        if table is None:
            return {}
        if kind == "CONV_2D":
            o = tfl.Conv2DOptions()
            o.Init(table.Bytes, table.Pos)
            return {"padding": o.Padding(), "stride": (o.StrideH(), o.StrideW()),
                    "act": o.FusedActivationFunction(), "dilation": (o.DilationHFactor(), o.DilationWFactor())}
        if kind == "DEPTHWISE_CONV_2D":
            o = tfl.DepthwiseConv2DOptions()
            o.Init(table.Bytes, table.Pos)
            return {"padding": o.Padding(), "stride": (o.StrideH(), o.StrideW()),
                    "act": o.FusedActivationFunction(), "multiplier": o.DepthMultiplier()}
        if kind == "MAX_POOL_2D":
            o = tfl.Pool2DOptions()
            o.Init(table.Bytes, table.Pos)
            return {"padding": o.Padding(), "stride": (o.StrideH(), o.StrideW()),
                    "filter": (o.FilterHeight(), o.FilterWidth()), "act": o.FusedActivationFunction()}
        if kind == "ADD":
            o = tfl.AddOptions()
            o.Init(table.Bytes, table.Pos)
            return {"act": o.FusedActivationFunction()}
        if kind == "RESIZE_BILINEAR":
            o = tfl.ResizeBilinearOptions()
            o.Init(table.Bytes, table.Pos)
            return {"align_corners": bool(o.AlignCorners()), "half_pixel_centers": bool(o.HalfPixelCenters())}
        if kind == "DEPTH_TO_SPACE":
            o = tfl.DepthToSpaceOptions()
            o.Init(table.Bytes, table.Pos)
            return {"block": o.BlockSize()}
        return {}

    def name(self, t: int) -> str:
        return self.graph.Tensors(t).Name().decode()

    def shape(self, t: int) -> tuple[int, ...]:
        tensor = self.graph.Tensors(t)
        return tuple(int(s) for s in tensor.ShapeAsNumpy()) if tensor.ShapeLength() else ()

    def constant(self, t: int) -> np.ndarray:
        """Value of a constant tensor as float32 (follows DEQUANTIZE and DENSIFY, applies int8 scales)."""
        op = self.producer.get(t)
        if op is not None:
            if op.kind not in ("DEQUANTIZE", "DENSIFY"):
                raise ValueError(f"tensor {self.name(t)} is computed by {op.kind}, not constant")
            return self.constant(op.inputs[0])
        tensor = self.graph.Tensors(t)
        buffer = self.model.Buffers(tensor.Buffer())
        if buffer.DataLength() == 0:
            raise ValueError(f"tensor {self.name(t)} has no data")
        data = buffer.DataAsNumpy().tobytes()
        kind = self._type_names[tensor.Type()]
        dtypes = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8,
                  "UINT8": np.uint8, "INT32": np.int32}
        if tensor.Sparsity() is not None:
            value = self._densify(tensor, np.frombuffer(data, dtype=dtypes[kind]))
        else:
            value = np.frombuffer(data, dtype=dtypes[kind]).reshape(self.shape(t))
        if kind in ("INT8", "UINT8"):
            q = tensor.Quantization()
            scale = q.ScaleAsNumpy().astype(np.float32)
            zero = q.ZeroPointAsNumpy().astype(np.float32)
            axis = q.QuantizedDimension()
            bshape = [1] * value.ndim
            if scale.size > 1:
                bshape[axis] = -1
            value = (value.astype(np.float32) - zero.reshape(bshape)) * scale.reshape(bshape)
        return value.astype(np.float32)

    def _densify(self, tensor, values: np.ndarray) -> np.ndarray:
        """Dense array of a sparse tensor (TFLite SparsityParameters: per traversal level a DENSE
        dimension or a SPARSE_CSR one with segments / indices; the values are the stored
        entries in traversal order). Block sparsity is not needed for these models."""
        tfl = self._tflite
        sp = tensor.Sparsity()
        shape = tuple(int(s) for s in tensor.ShapeAsNumpy())
        order = [int(d) for d in sp.TraversalOrderAsNumpy()]
        assert sp.BlockMapLength() == 0 and sorted(order) == list(range(len(shape))), "block sparsity"
        vectors = {1: tfl.Int32Vector, 2: tfl.Uint16Vector, 3: tfl.Uint8Vector}

        def array(kind: int, table) -> np.ndarray:
            vec = vectors[kind]()
            vec.Init(table.Bytes, table.Pos)
            return vec.ValuesAsNumpy().astype(np.int64)

        coords = np.zeros((1, 0), np.int64)  # (entries so far, levels so far)
        pos = np.zeros(1, np.int64)          # each entry's position at the current level
        for level in range(sp.DimMetadataLength()):
            meta = sp.DimMetadata(level)
            if meta.Format() == 0:  # DENSE
                size = meta.DenseSize()
                child = np.arange(size)
                coords = np.concatenate([np.repeat(coords, size, 0), np.tile(child, len(pos))[:, None]], 1)
                pos = (pos[:, None] * size + child[None]).reshape(-1)
            else:  # SPARSE_CSR
                segments = array(meta.ArraySegmentsType(), meta.ArraySegments())
                indices = array(meta.ArrayIndicesType(), meta.ArrayIndices())
                counts = segments[pos + 1] - segments[pos]
                pos = np.concatenate([np.arange(segments[p], segments[p + 1]) for p in pos])
                coords = np.concatenate([np.repeat(coords, counts, 0), indices[pos][:, None]], 1)
        assert len(pos) == len(values) and (pos == np.arange(len(values))).all(), "bad sparse layout"
        dense = np.zeros(shape, values.dtype)
        index = [None] * len(shape)
        for level, dim in enumerate(order):
            index[dim] = coords[:, level]
        dense[tuple(index)] = values
        return dense

    def is_constant(self, t: int) -> bool:
        op = self.producer.get(t)
        if op is not None:
            return op.kind in ("DEQUANTIZE", "DENSIFY")
        return self.model.Buffers(self.graph.Tensors(t).Buffer()).DataLength() > 0


# ------------------------------------------------------------------- pattern decomposition
@dataclass
class Layer:
    """A recognised unit: 'conv' (conv [+ act]) or 'block' (residual dw/pw block)."""

    kind: str
    input: int
    output: int
    params: dict[str, np.ndarray]
    info: dict


def _padding_name(code: int) -> str:
    return {0: "SAME", 1: "VALID"}[code]


def _conv_params(g: TFLiteGraph, conv: Op, prefix: str, fused_act: bool = False) -> dict[str, np.ndarray]:
    w = g.constant(conv.inputs[1])
    b = g.constant(conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] >= 0 else None
    if conv.kind == "CONV_2D":
        w = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
    else:
        assert conv.options["multiplier"] == 1 and w.shape[0] == 1, "only depth multiplier 1"
        w = w.transpose(3, 0, 1, 2)  # 1HWC -> C1HW
    assert conv.options.get("dilation", (1, 1)) == (1, 1) and conv.options["act"] in ((0, 1) if fused_act else (0,))
    out = {f"{prefix}.weight": w}
    if b is not None:
        out[f"{prefix}.bias"] = b
    return out


def _act_params(g: TFLiteGraph, act: Op, prefix: str) -> dict[str, np.ndarray]:
    if act.kind == "PRELU":
        return {f"{prefix}.weight": g.constant(act.inputs[1]).reshape(-1)}
    return {}


def parse_layer(g: TFLiteGraph, t: int) -> Layer:
    """Recognise the unit that produces tensor ``t``."""
    op = g.producer[t]
    act = None
    if op.kind in ("RELU", "PRELU"):
        act, op = op, g.producer[op.inputs[0]]
    if op.kind == "CONV_2D":
        info = {"act": act.kind if act else None, "stride": op.options["stride"],
                "padding": _padding_name(op.options["padding"]), "weight_shape": g.shape(op.inputs[1])}
        params = {**_conv_params(g, op, "conv"), **(_act_params(g, act, "act") if act else {})}
        return Layer("conv", op.inputs[0], t, params, info)
    if op.kind != "ADD" or act is None:
        raise ValueError(f"unrecognised pattern at {g.name(t)}: {op.kind}")
    for branch, shortcut in (op.inputs, op.inputs[::-1]):
        pw = g.producer.get(branch)
        if pw is None or pw.kind != "CONV_2D":
            continue
        dw = g.producer.get(pw.inputs[0])
        if dw is None or dw.kind != "DEPTHWISE_CONV_2D":
            continue
        x = dw.inputs[0]
        # Walk the shortcut back to x: identity, channel PAD, MAX_POOL, or PAD(MAX_POOL).
        path, s = [], shortcut
        while s != x:
            sop = g.producer[s]
            assert sop.kind in ("PAD", "MAX_POOL_2D"), f"unexpected shortcut op {sop.kind}"
            if sop.kind == "PAD":
                pads = g.constant(sop.inputs[1]).astype(np.int64).reshape(-1, 2).tolist()
                assert pads[:3] == [[0, 0]] * 3 and pads[3][0] == 0, f"non-channel pad {pads}"
            else:
                assert sop.options["filter"] == (2, 2) and sop.options["stride"] == (2, 2)
            path.append(sop.kind)
            s = sop.inputs[0]
        info = {"act": act.kind, "stride": dw.options["stride"], "shortcut": path[::-1],
                "in_channels": g.shape(x)[-1], "out_channels": g.shape(t)[-1],
                "dw_padding": _padding_name(dw.options["padding"])}
        params = {**_conv_params(g, dw, "dw"), **_conv_params(g, pw, "pw"), **_act_params(g, act, "act")}
        return Layer("block", x, t, params, info)
    raise ValueError(f"ADD at {g.name(t)} is not a residual block")


def trace_chain(g: TFLiteGraph, t: int) -> list[Layer]:
    """Layers from the graph input up to tensor ``t``, in execution order."""
    chain = []
    while t not in g.inputs:
        layer = parse_layer(g, t)
        chain.append(layer)
        t = layer.input
    return chain[::-1]


def _named(prefix: str, layer: Layer) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v for k, v in layer.params.items()}


# --------------------------------------------------------------------------- the two models
def convert_detector(g: TFLiteGraph) -> tuple[dict[str, np.ndarray], dict]:
    """BlazeFace short range: stem + residual blocks + four 1x1 heads (two scales)."""
    assert g.shape(g.inputs[0]) == (1, 128, 128, 3), g.shape(g.inputs[0])
    heads = {}
    for out in g.outputs:  # CONCATENATION of RESHAPEs of head convs
        cat = g.producer[out]
        assert cat.kind == "CONCATENATION"
        for reshaped in cat.inputs:
            conv_out = g.producer[reshaped].inputs[0]
            heads[g.name(conv_out)] = conv_out
    order = {"classificator_8": "classifier_8", "classificator_16": "classifier_16",
             "regressor_8": "regressor_8", "regressor_16": "regressor_16"}
    assert set(heads) == set(order), sorted(heads)
    deepest = trace_chain(g, g.producer[heads["regressor_16"]].inputs[0])
    stem, blocks = deepest[0], deepest[1:]
    assert stem.kind == "conv" and all(b.kind == "block" for b in blocks)
    state = _named("stem", stem)
    for i, block in enumerate(blocks):
        state.update(_named(f"backbone.{i}", block))
    block_of = {b.output: i for i, b in enumerate(blocks)}
    taps = {}
    for tfl_name, name in order.items():
        layer = parse_layer(g, heads[tfl_name])
        assert layer.kind == "conv" and layer.info["act"] is None
        taps[name] = block_of[layer.input]
        state.update(_named(name, layer))
    assert taps["classifier_8"] == taps["regressor_8"] and taps["classifier_16"] == taps["regressor_16"]
    arch = {"stem": stem.info, "blocks": [b.info for b in blocks], "taps": taps}
    log.info("detector: stem + %d blocks, heads tap blocks %s", len(blocks), taps)
    return state, arch


def convert_landmarks(g: TFLiteGraph) -> tuple[dict[str, np.ndarray], dict]:
    """Face mesh: stem + backbone blocks, then a mesh head and a face-flag head."""
    assert g.shape(g.inputs[0]) == (1, 192, 192, 3), g.shape(g.inputs[0])
    by_size = {int(np.prod(g.shape(t))): t for t in g.outputs}
    mesh_out, flag_out = by_size[MESH_POINTS * 3], by_size[1]
    mesh_chain, flag_chain = trace_chain(g, mesh_out), trace_chain(g, flag_out)
    shared = 0
    while mesh_chain[shared].output == flag_chain[shared].output:
        shared += 1
    backbone = mesh_chain[:shared]
    stem, blocks = backbone[0], backbone[1:]
    assert stem.kind == "conv" and all(b.kind == "block" for b in blocks)
    state = _named("stem", stem)
    for i, block in enumerate(blocks):
        state.update(_named(f"backbone.{i}", block))
    arch = {"stem": stem.info, "blocks": [b.info for b in blocks]}
    for head, chain in (("mesh_head", mesh_chain[shared:]), ("flag_head", flag_chain[shared:])):
        for j, layer in enumerate(chain):
            state.update(_named(f"{head}.{j}", layer))
        arch[head] = [(layer.kind, layer.info) for layer in chain]
    log.info("landmarks: stem + %d blocks; mesh head %d layers, flag head %d layers",
             len(blocks), len(mesh_chain) - shared, len(flag_chain) - shared)
    return state, arch


# ----------------------------------------------------------------- the full-range detector
SYMMETRIC_PAD = [[0, 0], [1, 1], [1, 1], [0, 0]]  # NHWC: one zero pixel on each side of H and W


def _unpad(g: TFLiteGraph, t: int) -> int:
    """Input of the explicit 1-px zero PAD that produces ``t``."""
    op = g.producer[t]
    assert op.kind == "PAD", f"expected PAD before {g.name(t)}, got {op.kind}"
    pads = g.constant(op.inputs[1]).astype(np.int64).reshape(-1, 2).tolist()
    assert pads == SYMMETRIC_PAD, pads
    return op.inputs[0]


def _separable(g: TFLiteGraph, t: int, prefix: str) -> tuple[int, dict[str, np.ndarray], dict]:
    """``pw(dw(pad(x)))`` producing ``t``: a VALID 3x3 depthwise conv on the 1-px padded input,
    then a 1x1 conv with an optional fused ReLU -> (x, params, info)."""
    pw = g.producer[t]
    assert pw.kind == "CONV_2D" and g.shape(pw.inputs[1])[1:3] == (1, 1), f"no 1x1 conv at {g.name(t)}"
    dw = g.producer[pw.inputs[0]]
    assert dw.kind == "DEPTHWISE_CONV_2D" and g.shape(dw.inputs[1])[1:3] == (3, 3), f"no dw conv at {g.name(t)}"
    assert _padding_name(dw.options["padding"]) == "VALID"
    x = _unpad(g, dw.inputs[0])
    params = {**_conv_params(g, dw, f"{prefix}.dw"), **_conv_params(g, pw, f"{prefix}.pw.conv", fused_act=True)}
    return x, params, {"stride": dw.options["stride"][0], "relu": pw.options["act"] == 1}


def _double_unit(g: TFLiteGraph, t: int) -> Layer:
    """``relu(x + b(a(x)))`` (residual, stride 1) or ``relu(b(a(x)))`` (the first unit of a
    stage, ``a`` strided), ``a`` and ``b`` separable convs, ``a`` with a ReLU."""
    op = g.producer[t]
    if op.kind == "ADD":
        assert op.options["act"] == 1, f"ADD without ReLU at {g.name(t)}"
        for branch, shortcut in (op.inputs, op.inputs[::-1]):
            try:
                mid, pb, ib = _separable(g, branch, "b")
                x, pa, ia = _separable(g, mid, "a")
            except (AssertionError, KeyError):
                continue
            if x != shortcut or ib["relu"]:
                continue
            assert ia["relu"] and ia["stride"] == ib["stride"] == 1
            info = {"cin": g.shape(x)[-1], "mid": g.shape(mid)[-1], "cout": g.shape(t)[-1], "stride": 1,
                    "residual": True}
            return Layer("double", x, t, {**pa, **pb}, info)
        raise ValueError(f"ADD at {g.name(t)} is not a residual unit")
    mid, pb, ib = _separable(g, t, "b")
    x, pa, ia = _separable(g, mid, "a")
    assert ia["relu"] and ib["relu"] and ib["stride"] == 1
    info = {"cin": g.shape(x)[-1], "mid": g.shape(mid)[-1], "cout": g.shape(t)[-1], "stride": ia["stride"],
            "residual": False}
    return Layer("double", x, t, {**pa, **pb}, info)


def _full_range_layer(g: TFLiteGraph, t: int) -> Layer:
    """Recognise the unit producing ``t``: the padded 3x3 stem conv, a 1x1 conv + ReLU, an FPN
    merge ``lateral + upsample2x(top)`` (its ``input`` is the top branch) or a double unit."""
    op = g.producer[t]
    if op.kind == "ADD" and op.options["act"] == 0:
        lateral, up = op.inputs
        if g.producer[up].kind != "RESIZE_BILINEAR":
            lateral, up = up, lateral
        resize = g.producer[up]
        assert resize.kind == "RESIZE_BILINEAR", f"ADD at {g.name(t)} is no FPN merge"
        assert resize.options == {"align_corners": False, "half_pixel_centers": True}, resize.options
        top = resize.inputs[0]
        size = tuple(int(v) for v in g.constant(resize.inputs[1]))
        assert size == tuple(2 * s for s in g.shape(top)[1:3]) == g.shape(t)[1:3], size
        return Layer("merge", top, t, {}, {"lateral": lateral, "scale": 2})
    if op.kind == "CONV_2D" and g.producer.get(op.inputs[0], op).kind != "DEPTHWISE_CONV_2D":
        kernel = g.shape(op.inputs[1])[1]
        x = _unpad(g, op.inputs[0]) if kernel > 1 else op.inputs[0]
        assert op.options["act"] == 1 and (kernel == 1 or _padding_name(op.options["padding"]) == "VALID")
        info = {"cin": g.shape(x)[-1], "cout": g.shape(t)[-1], "kernel": kernel, "stride": op.options["stride"][0]}
        return Layer("conv", x, t, _conv_params(g, op, "conv", fused_act=True), info)
    return _double_unit(g, t)


def _full_range_head(g: TFLiteGraph, out: int, prefix: str) -> tuple[int, dict[str, np.ndarray], dict]:
    """``reshape(depth_to_space(dw_stride2(pad(conv1x1(x)))))`` producing output ``out``."""
    reshape = g.producer[out]
    d2s = g.producer[reshape.inputs[0]]
    assert reshape.kind == "RESHAPE" and d2s.kind == "DEPTH_TO_SPACE" and d2s.options["block"] == 2
    dw = g.producer[d2s.inputs[0]]
    assert dw.kind == "DEPTHWISE_CONV_2D" and dw.options["stride"] == (2, 2)
    assert _padding_name(dw.options["padding"]) == "VALID" and g.shape(dw.inputs[1])[1:3] == (3, 3)
    conv = g.producer[_unpad(g, dw.inputs[0])]
    assert conv.kind == "CONV_2D" and g.shape(conv.inputs[1])[1:3] == (1, 1) and conv.options["act"] == 0
    params = {**_conv_params(g, conv, f"{prefix}.conv.conv"), **_conv_params(g, dw, f"{prefix}.dw")}
    info = {"cin": g.shape(conv.inputs[0])[-1], "channels": g.shape(out)[-1], "block": 2}
    return conv.inputs[0], params, info


def convert_full_range(g: TFLiteGraph) -> tuple[dict[str, np.ndarray], dict]:
    """BlazeFace full range: padded 3x3 stem, backbone of double separable units (48..6 px),
    a top-down FPN back to 48x48, and two depth-to-space heads (one anchor per 48x48 cell)."""
    assert g.shape(g.inputs[0]) == (1, 192, 192, 3), g.shape(g.inputs[0])
    by_width = {g.shape(t): t for t in g.outputs}
    assert set(by_width) == {(1, 2304, 1), (1, 2304, 16)}, sorted(by_width)
    state, heads, feats = {}, {}, set()
    for name, shape in (("classifier", (1, 2304, 1)), ("regressor", (1, 2304, 16))):
        x, params, info = _full_range_head(g, by_width[shape], name)
        feats.add(x)
        state.update(params)
        heads[name] = info
    assert len(feats) == 1, "the heads read different features"
    chain, t = [], feats.pop()
    while t not in g.inputs:
        layer = _full_range_layer(g, t)
        chain.append(layer)
        t = layer.input
    chain.reverse()
    stem = chain[0]
    assert stem.kind == "conv" and stem.info["kernel"] == 3
    first_top = next(i for i, layer in enumerate(chain[1:], 1) if layer.kind != "double")
    backbone = chain[1:first_top]
    state.update(_named("stem", stem))
    for i, unit in enumerate(backbone):
        state.update(_named(f"backbone.{i}", unit))
    unit_of = {unit.output: i for i, unit in enumerate(backbone)}
    decoder = []
    for layer in chain[first_top:]:
        k = len(decoder) - 1
        if layer.kind == "conv":  # the top branch of a new level
            assert layer.info["kernel"] == 1
            decoder.append({"top": [layer.info["cin"], layer.info["cout"]], "blocks": []})
            state.update(_named(f"decoder.{k + 1}.top", layer))
        elif layer.kind == "merge":
            lateral = _full_range_layer(g, layer.info["lateral"])
            assert lateral.kind == "conv" and lateral.info["kernel"] == 1 and "tap" not in decoder[k]
            decoder[k]["tap"] = unit_of[lateral.input]
            decoder[k]["lateral"] = [lateral.info["cin"], lateral.info["cout"]]
            state.update(_named(f"decoder.{k}.lateral", lateral))
        else:
            assert "tap" in decoder[k] and layer.info["residual"]
            state.update(_named(f"decoder.{k}.blocks.{len(decoder[k]['blocks'])}", layer))
            decoder[k]["blocks"].append([layer.info["cin"], layer.info["mid"], layer.info["cout"]])
    arch = {"stem": stem.info,
            "backbone": [[u.info["cin"], u.info["mid"], u.info["cout"], u.info["stride"]] for u in backbone],
            "decoder": decoder, "heads": heads}
    log.info("full-range detector: stem + %d units, %d FPN levels tapping units %s",
             len(backbone), len(decoder), [level["tap"] for level in decoder])
    return state, arch


def mesh_flip_permutation(connections_file: Path | None) -> np.ndarray:
    """Index of each mesh point's mirror image (an involution), checked against the topology."""
    side = [i for i in range(248) if i not in MESH_MIDLINE]
    perm = np.arange(MESH_POINTS)
    perm[side] = np.arange(248, MESH_POINTS)
    perm[248:] = side
    assert len(side) == MESH_POINTS - 248 and (perm[perm] == np.arange(MESH_POINTS)).all()
    if connections_file is None or not connections_file.exists():
        log.warning("face_mesh_connections.py not found: flip permutation not cross-checked")
        return perm
    # Cross-check with the mesh topology and the left/right contour lists shipped in mediapipe.
    spec = importlib.util.spec_from_file_location("_mp_face_mesh_connections", connections_file)
    conn = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conn)

    def mirrored(edges) -> set[frozenset]:
        return {frozenset((int(perm[a]), int(perm[b]))) for a, b in edges}

    pairs = [("FACEMESH_LEFT_EYE", "FACEMESH_RIGHT_EYE"), ("FACEMESH_LEFT_EYEBROW", "FACEMESH_RIGHT_EYEBROW"),
             ("FACEMESH_LIPS", "FACEMESH_LIPS"), ("FACEMESH_FACE_OVAL", "FACEMESH_FACE_OVAL")]
    for left, right in pairs:
        assert mirrored(getattr(conn, left)) == {frozenset(e) for e in getattr(conn, right)}, (left, right)
    mesh = {frozenset(e) for e in conn.FACEMESH_TESSELATION}
    kept = len(mirrored(mesh) & mesh) / len(mesh)
    log.info("flip permutation: contour lists map exactly; %.2f %% of mesh edges map onto edges", 100 * kept)
    assert kept > 0.99, kept
    return perm


# ---------------------------------------------------------------------------------- output
NOTICE = """\
Face prior weights in this folder
=================================

face_detector.safetensors, face_detector_full_range.safetensors and face_landmarks.safetensors
hold the weights of three models from Google's MediaPipe
(https://github.com/google-ai-edge/mediapipe), version {version}, converted to PyTorch layouts
by scripts/convert_mediapipe_weights.py:

- face_detector.safetensors  <- mediapipe/{detector}  (sha256 {detector_sha})
- face_detector_full_range.safetensors <- mediapipe/{full_range}  (sha256 {full_range_sha})
- face_landmarks.safetensors <- mediapipe/{landmark}  (sha256 {landmark_sha})

The flip permutation stored with the landmark weights follows the vertex order of MediaPipe's
canonical face model.

Copyright The MediaPipe Authors. Licensed under the Apache License, Version 2.0 (the
"License"); you may not use these files except in compliance with the License. You may obtain
a copy of the License at http://www.apache.org/licenses/LICENSE-2.0. Unless required by
applicable law or agreed to in writing, software distributed under the License is distributed
on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.

Changes: the float16 constants were read from the .tflite files and re-arranged into PyTorch
tensor layouts (OHWI -> OIHW, depthwise 1HWC -> C1HW, PReLU (1, 1, C) -> C); sparse constants
of the full-range model were expanded to dense arrays (zeros filled in); values unchanged.
"""


def find_mediapipe() -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("mediapipe is not installed here; pass --mediapipe-dir")
    return Path(list(spec.submodule_search_locations)[0])


def mediapipe_version(root: Path) -> str:
    for dist in sorted(root.parent.glob("mediapipe-*.dist-info")):
        return dist.name.removesuffix(".dist-info").split("-")[1]
    return "unknown"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_content(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bool:
    """Whether the safetensors file at ``path`` already holds exactly these tensors and metadata."""
    from safetensors import safe_open

    if not path.exists():
        return False
    with safe_open(str(path), framework="numpy") as f:
        if f.metadata() != metadata or set(f.keys()) != set(tensors):
            return False
        return all(f.get_tensor(k).dtype == v.dtype and np.array_equal(f.get_tensor(k), v)
                   for k, v in tensors.items())


def save(state: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.numpy import save_file

    # C order matters: safetensors writes the raw buffer, and astype keeps transposed strides.
    tensors = {k: np.ascontiguousarray(v, dtype=np.float16 if v.dtype.kind == "f" else v.dtype)
               for k, v in state.items()}
    for k, v in state.items():  # float16 storage must be lossless
        if v.dtype.kind == "f":
            assert np.array_equal(tensors[k].astype(np.float32), v), f"{k} is not float16-exact"
    if _same_content(path, tensors, metadata):
        # safetensors writes the metadata in no fixed order: keep the file so re-runs change nothing
        log.info("kept %s (same tensors and metadata)", path)
        return
    save_file(tensors, str(path), metadata=metadata)
    path.chmod(0o644)
    log.info("wrote %s (%d tensors, %.1f kB)", path, len(tensors), path.stat().st_size / 1024)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mediapipe-dir", type=Path, help="the installed mediapipe package folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    root = args.mediapipe_dir or find_mediapipe()
    version = mediapipe_version(root)
    if version != EXPECTED_MEDIAPIPE:
        log.warning("mediapipe %s found; these priors were written for %s", version, EXPECTED_MEDIAPIPE)
    args.out.mkdir(parents=True, exist_ok=True)

    det_path, lmk_path, full_path = root / DETECTOR_FILE, root / LANDMARK_FILE, root / FULL_RANGE_FILE
    det_state, det_arch = convert_detector(TFLiteGraph(det_path))
    full_state, full_arch = convert_full_range(TFLiteGraph(full_path))
    lmk_state, lmk_arch = convert_landmarks(TFLiteGraph(lmk_path))
    flip = mesh_flip_permutation(root / "python" / "solutions" / "face_mesh_connections.py")
    lmk_state["flip_permutation"] = flip.astype(np.int64)

    common = {"source": "mediapipe", "mediapipe_version": version, "license": "Apache-2.0"}
    save(det_state, args.out / "face_detector.safetensors",
         {**common, "file": DETECTOR_FILE, "sha256": sha256(det_path), "input": "128x128 RGB in [-1, 1]",
          "architecture": json.dumps(det_arch)})
    save(full_state, args.out / "face_detector_full_range.safetensors",
         {**common, "file": FULL_RANGE_FILE, "sha256": sha256(full_path), "input": "192x192 RGB in [-1, 1]",
          "architecture": json.dumps(full_arch)})
    save(lmk_state, args.out / "face_landmarks.safetensors",
         {**common, "file": LANDMARK_FILE, "sha256": sha256(lmk_path), "input": "192x192 RGB in [0, 1]",
          "architecture": json.dumps(lmk_arch)})
    (args.out / "NOTICE").write_text(NOTICE.format(
        version=version, detector=DETECTOR_FILE, landmark=LANDMARK_FILE, full_range=FULL_RANGE_FILE,
        detector_sha=sha256(det_path), landmark_sha=sha256(lmk_path), full_range_sha=sha256(full_path)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
