"""Small PyTorch networks run on ONNX Runtime, where it is several times faster on the CPU.

    fast = CpuFastPath("BlazeFaceNet")        # in a module's __init__
    scores, boxes = fast(self.net, x)         # as self.net(x); on ONNX Runtime when x is on the CPU

The face detectors, the face mesh and the occlusion-aware prior network are depthwise-convolution
networks that PyTorch's CPU kernels run slowly at the batch sizes of ``predict``. Measured on this
machine's CPU (1 thread, ms per image; the other core busy): BlazeFace short range 5.1 -> 1.6,
full range 13.9 -> 3.3 (``benchmarks/predict_speed.py --runtime pytorch`` for end to end).

A network is exported once (dynamic batch) into ``graphs/`` of the cache folder (``$ORSANET_CACHE``
or ``~/.cache/orsanet``), under a name made of a digest of its weights, input shape, the torch
version and the source files of its modules, and read from there afterwards; where that folder
cannot be written it is exported in memory. Nothing is downloaded: the graph is made from the
weights already loaded.

Where they run is chosen per module (``runtime=``) or for the whole process with
``ORSANET_RUNTIME=pytorch|onnxruntime|auto`` (default ``auto``: ONNX Runtime where installed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "pytorch", "onnxruntime")
TORCH_SOURCE = str(Path(torch.__file__).parent)


def available() -> bool:
    """Whether ONNX Runtime is installed (``pip install 'orsanet[export]'``)."""
    return importlib.util.find_spec("onnxruntime") is not None


def cache_dir() -> Path:
    return Path(os.environ.get("ORSANET_CACHE") or Path.home() / ".cache" / "orsanet")


def check_runtime(runtime: str | None) -> str:
    """``runtime`` checked: ``auto`` (ONNX Runtime where installed), ``pytorch`` or ``onnxruntime``;
    None: ``$ORSANET_RUNTIME``, else ``auto``."""
    runtime = runtime or os.environ.get("ORSANET_RUNTIME") or "auto"
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnxruntime" and not available():
        raise ValueError("runtime onnxruntime: ONNX Runtime is not installed (pip install 'orsanet[export]')")
    return runtime


def open_session(model: str | os.PathLike | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session of a graph file (or its bytes), ``threads`` intra-op threads
    (default: PyTorch's). Idle workers sleep instead of spinning: between runs the same cores run
    orsanet's PyTorch code (crops, prior drawing), which spinning workers would slow down."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class StandIn:
    """``network(*inputs)`` on ONNX Runtime: the same tensor, tuple or dict of tensors, on the CPU."""

    def __init__(self, session, structure: str | tuple[str, ...]) -> None:
        """``structure``: ``"tensor"``, ``"tuple"``, or the keys of a dict output in order."""
        self.session, self.structure = session, structure
        self.input_names = [given.name for given in session.get_inputs()]

    def __call__(self, *inputs: torch.Tensor):
        feeds = {name: np.ascontiguousarray(x.detach().float().cpu().numpy()) for name, x in zip(self.input_names, inputs)}
        outputs = tuple(torch.from_numpy(out) for out in self.session.run(None, feeds))
        if self.structure == "tensor":
            return outputs[0]
        return outputs if self.structure == "tuple" else dict(zip(self.structure, outputs))


class CpuFastPath:
    """``fast(network, *inputs)``: ``network(*inputs)``, run on ONNX Runtime when the inputs are on the
    CPU, no gradient is asked for, the network is in eval mode and ``runtime`` allows it (``auto``:
    where ONNX Runtime is installed). The graph is made at the first such call for each input shape,
    and again if a different network is passed; the network's weights must not change after that
    (it is meant for frozen networks)."""

    def __init__(self, name: str, runtime: str | None = None) -> None:
        self.name, self.runtime = name, check_runtime(runtime)
        self._network: nn.Module | None = None
        self._stand_ins: dict[tuple, StandIn | None] = {}

    def __call__(self, network: nn.Module, *inputs: torch.Tensor):
        needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in inputs)
        if self.runtime == "pytorch" or inputs[0].device.type != "cpu" or network.training or needs_grad:
            return network(*inputs)
        if network is not self._network:
            self._network, self._stand_ins = network, {}
        shapes = tuple(tuple(x.shape[1:]) for x in inputs)
        if shapes not in self._stand_ins:
            # traced on two random inputs, so that no axis of size 1 is taken for a broadcast
            generator = torch.Generator().manual_seed(0)
            example = tuple(torch.rand(2, *x.shape[1:], generator=generator).to(x.dtype) for x in inputs)
            self._stand_ins[shapes] = stand_in(network, example, self.name, self.runtime)
        fast = self._stand_ins[shapes]
        return fast(*inputs) if fast is not None else network(*inputs)


def _digest(network: nn.Module, example: tuple[torch.Tensor, ...]) -> str:
    """The cache key: the weights, the input shapes, the torch version and the source files of every
    module class in the network (a changed ``forward`` makes a new graph)."""
    hasher = hashlib.sha256(f"{type(network).__qualname__}|{torch.__version__}|"
                            f"{[tuple(x.shape[1:]) for x in example]}".encode())
    for source in sorted({inspect.getsourcefile(type(module)) or "" for module in network.modules()}):
        if source and not source.startswith(TORCH_SOURCE):  # torch's own modules: keyed by its version
            hasher.update(Path(source).read_bytes())
    for key, value in network.state_dict().items():
        hasher.update(key.encode())
        hasher.update(value.detach().contiguous().cpu().numpy().tobytes())
    return hasher.hexdigest()[:16]


def stand_in(network: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], name: str,
             runtime: str | None = None) -> StandIn | None:
    """``network`` (eval mode, CPU) as a :class:`StandIn` on ONNX Runtime, or None where ``runtime`` is
    ``pytorch``, or is ``auto`` without ONNX Runtime or with a network that does not export.
    ``example``: inputs of the traced shapes (the batch axis is dynamic: trace with a batch of two).
    The network must be free of data-dependent control flow (the trace keeps the branches
    ``example`` took)."""
    if check_runtime(runtime) == "pytorch" or not available():
        return None
    example = example if isinstance(example, tuple) else (example,)
    path = cache_dir() / "graphs" / f"{name}-{_digest(network, example)}.onnx"
    if path.is_file():
        try:
            return _stand_in_of(open_session(path), network, example)
        except Exception as error:  # noqa: BLE001 - a damaged cache file is made again
            log.warning("%s: unreadable cached graph (%s); exporting it again", path, error)
    try:
        graph = _export(network, example)
    except Exception as error:  # noqa: BLE001 - an operator ONNX lacks: "auto" runs it in PyTorch
        if check_runtime(runtime) == "onnxruntime":
            raise ValueError(f"runtime onnxruntime: {name} does not export to ONNX ({error})") from None
        log.info("%s runs in PyTorch: it does not export to ONNX (%s)", name, str(error).splitlines()[0])
        return None
    try:
        from orsanet.fileio import atomic_path

        with atomic_path(path) as temporary:
            temporary.write_bytes(graph)
    except OSError as error:
        log.info("cannot cache %s (%s); the graph stays in memory", path, error)
    return _stand_in_of(open_session(graph), network, example)


def _stand_in_of(session, network: nn.Module, example: tuple[torch.Tensor, ...]) -> StandIn:
    with torch.no_grad():
        outputs = network(*example)
    structure = ("tensor" if isinstance(outputs, torch.Tensor) else tuple(outputs) if isinstance(outputs, dict)
                 else "tuple")
    return StandIn(session, structure)


def _export(network: nn.Module, example: tuple[torch.Tensor, ...]) -> bytes:
    names = [f"input{k}" for k in range(len(example))]
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        outputs = network(*example)  # a dict's values are exported in their order
        count = 1 if isinstance(outputs, torch.Tensor) else len(outputs)
        out_names = [f"output{k}" for k in range(count)]
        torch.onnx.export(network, example, buffer, input_names=names, output_names=out_names, opset_version=17,
                          dynamo=False, dynamic_axes={name: {0: "batch"} for name in names + out_names})
    return buffer.getvalue()
