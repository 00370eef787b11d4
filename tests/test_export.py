"""ONNX export (``orsanet.export``): graphs match PyTorch, batches are free, metadata round-trips, and
``OnnxFaceModel`` classifies a photo's face as ``FaceModel`` does.

Tolerances: logits of the graphs on the same inputs agree to 1e-4 (measured at most 1e-6);
``OnnxFaceModel.logits`` on the example face, with the priors measured by the exported prior graph
(the default) or mesh graph (a mesh-prior model), to 1e-3 (measured 8e-6 for the mesh; its points
differ by ~1e-5 of the crop). The int8 graph is only asked
to keep the example face's top-1 class (on the FERPlus test faces it keeps ~99 %).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install onnx onnxruntime)")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnx onnxruntime)")

from orsanet.checkpoint import DEFAULT_MODEL_PATH, load_model, save_model  # noqa: E402
from orsanet.contract import InputContract  # noqa: E402
from orsanet.export import (ExportError, OnnxFaceModel, export_onnx, generated_faces, int8_graph_path,  # noqa: E402
                            mesh_graph_path, prior_graph_path, read_onnx_metadata)
from orsanet.face_model import FaceModel  # noqa: E402
from orsanet.models import ORSANet, ORSANetConfig  # noqa: E402
from orsanet.priors.occlusion_net import NUM_CLASSES as NET_CLASSES  # noqa: E402
from orsanet.priors.occlusion_net import NUM_PARTS  # noqa: E402

ASTRONAUT = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
needs_default = pytest.mark.skipif(not DEFAULT_MODEL_PATH.exists(), reason="default model not packaged")
PAPER_LIKE = dict(num_classes=7, size="small", image_backbone="ir18", landmark_source="mobilefacenet", use_ssgm=False,
                  dim=64, num_heads=4, input_size=112)
LABELS7 = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]


def session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def mesh_inputs(batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weight = (torch.rand(batch, 468, 1, generator=g) > 0.3).float()  # some points hidden
    landmark = torch.cat([torch.rand(batch, 468, 2, generator=g), weight], -1)
    parsing = torch.rand(batch, 11, 28, 28, generator=g)
    return {"images": torch.randn(batch, 3, size, size, generator=g), "landmark_prior": landmark,
            "parsing_prior": parsing / parsing.sum(1, keepdim=True)}


@pytest.fixture(scope="module")
def default_export(tmp_path_factory) -> Path:
    """The packaged default (the occlusion-aware prior network's priors): classifier, priors, int8."""
    if not DEFAULT_MODEL_PATH.exists():
        pytest.skip("default model not packaged")
    return export_onnx("default", tmp_path_factory.mktemp("onnx") / "default.onnx", int8=True)


@pytest.fixture(scope="module")
def mesh_export(tiny_model, tmp_path_factory) -> Path:
    """conftest's tiny compact model with the face mesh's priors, exported."""
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "mesh_model.onnx", int8=True)


@pytest.fixture(scope="module")
def paper_model(tmp_path_factory) -> Path:
    """A small random model of the paper's layout: prior networks (MobileFaceNet) inside the model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ORSANet(ORSANetConfig(**PAPER_LIKE), LABELS7)
    return save_model(tmp_path_factory.mktemp("paper") / "paper.safetensors", model, LABELS7, InputContract(112))


@pytest.fixture(scope="module")
def paper_export(paper_model, tmp_path_factory) -> Path:
    return export_onnx(paper_model, tmp_path_factory.mktemp("onnx") / "paper.onnx")


@pytest.fixture(scope="module")
def example_crop() -> torch.Tensor:
    """The example photo's face, framed and cut by the default model's contract: ``(1, 3, 56, 56)``."""
    from orsanet.checkpoint import read_metadata
    from orsanet.inference.framing import FaceFinder

    finder = FaceFinder(read_metadata("default").contract)
    photo = Image.open(ASTRONAUT).convert("RGB")
    return finder.pixels(photo, [finder.best_face(photo)])


def net_inputs(batch: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random inputs of a classifier with the occlusion-aware prior network's priors."""
    g = torch.Generator().manual_seed(seed)
    parsing = torch.rand(batch, NET_CLASSES, 28, 28, generator=g)
    return {"images": torch.randn(batch, 3, size, size, generator=g),
            "landmark_prior": torch.rand(batch, 2 * NUM_PARTS, 28, 28, generator=g),
            "parsing_prior": parsing / parsing.sum(1, keepdim=True)}


# ------------------------------------------------------------------------------ the default model
@needs_default
def test_default_export_writes_classifier_prior_and_int8_graphs(default_export):
    assert default_export.name == "default.onnx"
    for path in (default_export, prior_graph_path(default_export), int8_graph_path(default_export)):
        assert path.is_file() and path.stat().st_size > 0
        onnx.checker.check_model(str(path))
    assert [i.name for i in session(default_export).get_inputs()] == ["images", "landmark_prior", "parsing_prior"]
    assert [o.name for o in session(default_export).get_outputs()] == ["logits"]
    assert [i.name for i in session(prior_graph_path(default_export)).get_inputs()] == ["pixels"]
    assert not mesh_graph_path(default_export).exists()


def test_mesh_model_export_writes_classifier_mesh_and_int8_graphs(mesh_export):
    for path in (mesh_export, mesh_graph_path(mesh_export), int8_graph_path(mesh_export)):
        assert path.is_file() and path.stat().st_size > 0
        onnx.checker.check_model(str(path))
    assert [i.name for i in session(mesh_export).get_inputs()] == ["images", "landmark_prior", "parsing_prior"]
    assert [i.name for i in session(mesh_graph_path(mesh_export)).get_inputs()] == ["crops"]


@needs_default
@pytest.mark.parametrize("batch", [1, 5])
def test_default_graph_matches_pytorch_at_any_batch(default_export, batch):
    model = load_model("default")
    inputs = net_inputs(batch, model.config.input_size, seed=batch)
    with torch.no_grad():
        expected = model(**inputs).logits
    (logits,) = session(default_export).run(None, {k: v.numpy() for k, v in inputs.items()})
    assert logits.shape == (batch, 8)
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("batch", [1, 5])
def test_mesh_model_graph_matches_pytorch_at_any_batch(tiny_model, mesh_export, batch):
    model = load_model(tiny_model)
    inputs = mesh_inputs(batch, model.config.input_size, seed=batch)
    with torch.no_grad():
        expected = model(**inputs).logits
    (logits,) = session(mesh_export).run(None, {k: v.numpy() for k, v in inputs.items()})
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("batch", [1, 5])
def test_mesh_graph_matches_the_mesh_network(mesh_export, batch):
    from orsanet.priors.face_mesh import FaceMesh

    with torch.random.fork_rng(devices=[]):
        net = FaceMesh().net
    crops = torch.rand(batch, 3, 192, 192, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        points, logits = net(crops)
    got_points, got_logits = session(mesh_graph_path(mesh_export)).run(None, {"crops": crops.numpy()})
    assert got_points.shape == (batch, 468, 3) and got_logits.shape == (batch,)
    torch.testing.assert_close(torch.from_numpy(got_points), points, atol=1e-3, rtol=1e-5)  # points in 192-px units
    torch.testing.assert_close(torch.from_numpy(got_logits), logits, atol=1e-4, rtol=0)


@needs_default
def test_metadata_round_trips_labels_contract_and_inputs(default_export, mesh_export):
    model = load_model("default")
    values = read_onnx_metadata(default_export)
    assert values["label_names"] == model.label_names
    assert InputContract.from_dict(values["preprocessing"]) == model.contract
    assert ORSANetConfig.from_dict(values["config"]) == model.config
    assert values["prior_backend"] == "occlusion_net" and values["prior_graph"] == "default.priors.onnx"
    assert [(i["name"], i["shape"]) for i in values["inputs"]] == [
        ("images", ["batch", 3, 56, 56]), ("landmark_prior", ["batch", 2 * NUM_PARTS, 28, 28]),
        ("parsing_prior", ["batch", NET_CLASSES, 28, 28])]
    assert values["outputs"][0]["name"] == "logits" and values["outputs"][0]["shape"] == ["batch", 8]
    assert values["orsanet_version"] and values["mesh_graph"] is None
    mesh = read_onnx_metadata(mesh_graph_path(mesh_export))
    assert sorted(mesh["flip_permutation"]) == list(range(468)) and mesh["prior"]["backend"] == "mesh"
    assert read_onnx_metadata(mesh_export)["mesh_graph"] == "mesh_model.mesh.onnx"
    face = OnnxFaceModel(default_export, threads=1)
    assert face.label_names == model.label_names and face.contract == model.contract


@needs_default
@pytest.mark.parametrize("flip", [False, True])
def test_onnx_face_model_matches_face_model_on_the_example_face(default_export, example_crop, flip):
    reference = FaceModel.load("default")
    face = OnnxFaceModel(default_export, threads=1)
    geometry = face.measure(example_crop)
    torch.testing.assert_close(geometry["parsing"], reference.measure(example_crop)["parsing"], atol=1e-4, rtol=0)
    expected = reference.logits(example_crop, flip=flip)
    got = face.logits(example_crop, flip=flip)
    assert got.shape == (1, 8)
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=0)
    assert face.label_names[int(got.argmax())] == "happiness"  # the astronaut smiles
    # given geometry, several faces at once
    batch = example_crop.expand(3, -1, -1, -1)
    given = {k: v.expand(3, *v.shape[1:]) for k, v in geometry.items()}
    torch.testing.assert_close(face.logits(batch, given, flip=flip), expected.expand(3, -1), atol=1e-3, rtol=0)


def test_onnx_face_model_with_mesh_priors_matches_face_model(tiny_model, mesh_export, example_crop):
    reference = FaceModel.load(tiny_model)
    face = OnnxFaceModel(mesh_export, threads=1)
    geometry = face.measure(example_crop)
    torch.testing.assert_close(geometry["points"], reference.measure(example_crop)["points"], atol=1e-4, rtol=0)
    torch.testing.assert_close(face.logits(example_crop, flip=True), reference.logits(example_crop, flip=True),
                               atol=1e-3, rtol=0)
    assert OnnxFaceModel(int8_graph_path(mesh_export), threads=1).priors.mesh_path == mesh_graph_path(mesh_export)


@needs_default
def test_int8_graph_keeps_the_top1_class_of_the_example_face(default_export, example_crop):
    float_face = OnnxFaceModel(default_export, threads=1)
    int8_face = OnnxFaceModel(int8_graph_path(default_export), threads=1)
    values = int8_face.metadata
    assert values["quantization"]["float_graph"] == "default.onnx" and values["label_names"] == float_face.label_names
    assert int8_face.prior_backend == "occlusion_net"  # the int8 classifier reads the float prior graph
    ops = {node.op_type for node in onnx.load(str(int8_graph_path(default_export))).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    geometry = float_face.measure(example_crop)
    top1 = int(float_face.logits(example_crop, geometry).argmax())
    assert int(int8_face.logits(example_crop, geometry).argmax()) == top1
    assert int8_graph_path(default_export).stat().st_size < default_export.stat().st_size / 2


@needs_default
def test_int8_graph_keeps_the_backbones_full_and_half_resolution_layers_float(default_export):
    float_nodes = set(read_onnx_metadata(int8_graph_path(default_export))["quantization"]["float_nodes"])
    assert float_nodes and all("/image_backbone/" in name for name in float_nodes)
    assert "/model/image_backbone/trunk/trunk.0/Conv" in float_nodes  # the stem, at the input's width
    graph = onnx.load(str(int8_graph_path(default_export))).graph
    made_by = {output: node.op_type for node in graph.node for output in node.output}
    convs = {node.name: node for node in graph.node if node.op_type == "Conv" and "/image_backbone/" in node.name}
    weight_source = {name: made_by.get(node.input[1], "initializer") for name, node in convs.items()}
    assert {weight_source[name] for name in float_nodes & convs.keys()} == {"initializer"}
    assert {weight_source[name] for name in convs.keys() - float_nodes} == {"DequantizeLinear"}
    assert convs.keys() - float_nodes  # the deeper stages are quantised


@needs_default
def test_fixed_batch_export_runs_face_by_face(tmp_path, example_crop):
    path = export_onnx("default", tmp_path / "fixed.onnx", dynamic_batch=False)
    assert [d for d in session(path).get_inputs()[0].shape] == [1, 3, 56, 56]
    assert read_onnx_metadata(path)["inputs"][0]["shape"] == [1, 3, 56, 56]
    face, reference = OnnxFaceModel(path, threads=1), FaceModel.load("default")
    batch = example_crop.expand(2, -1, -1, -1).clone()
    torch.testing.assert_close(face.logits(batch), reference.logits(batch), atol=1e-3, rtol=0)


# ----------------------------------------------------------------- the paper layout (priors inside)
@pytest.mark.parametrize("batch", [1, 5])
def test_paper_like_graph_takes_images_only_and_matches_pytorch(paper_model, paper_export, batch):
    model = load_model(paper_model)
    graph = session(paper_export)
    assert [(i.name, i.shape[1:]) for i in graph.get_inputs()] == [("images", [3, 112, 112])]
    pixels = torch.rand(batch, 3, 112, 112, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        expected = model(model.contract.normalise(pixels)).logits
    (logits,) = graph.run(None, {"images": model.contract.normalise(pixels).numpy()})
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=0)


def test_paper_like_onnx_face_model_matches_face_model(paper_model, paper_export):
    face, reference = OnnxFaceModel(paper_export, threads=1), FaceModel.load(paper_model)
    pixels = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(2))
    assert face.priors is None and face.measure(pixels) is None and not mesh_graph_path(paper_export).exists()
    for flip in (False, True):
        torch.testing.assert_close(face.logits(pixels, flip=flip), reference.logits(pixels, flip=flip),
                                   atol=1e-4, rtol=0)


def test_paper_like_metadata(paper_export):
    values = read_onnx_metadata(paper_export)
    assert values["label_names"] == LABELS7 and values["prior_backend"] is None and values["mesh_graph"] is None
    assert values["config"]["landmark_source"] == "mobilefacenet"
    assert [(i["name"], i["shape"]) for i in values["inputs"]] == [("images", ["batch", 3, 112, 112])]
    assert InputContract.from_dict(values["preprocessing"]) == InputContract(112)


def test_bad_requests_are_refused(paper_model, mesh_export, tmp_path):
    with pytest.raises(ExportError, match="opset"):
        export_onnx(paper_model, tmp_path / "old.onnx", opset=13)
    with pytest.raises(ExportError, match="face-mesh graph"):
        OnnxFaceModel(mesh_graph_path(mesh_export))
    with pytest.raises(ExportError, match="no such"):
        OnnxFaceModel(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ExportError):
        OnnxFaceModel(tmp_path / "junk.onnx")


def test_generated_faces_follow_the_contract():
    pixels, geometry, hidden = generated_faces(InputContract(56, color="gray"), 8)
    assert pixels.shape == (8, 3, 56, 56) and hidden.shape == (8, 56, 56) and geometry["points"].shape == (8, 468, 2)
    assert 0 <= pixels.min() and pixels.max() <= 1 and torch.equal(pixels[:, 0], pixels[:, 2])  # grey
    assert hidden.any() and geometry["presence"].tolist().count(0.0) == 1
    torch.testing.assert_close(generated_faces(InputContract(56, color="gray"), 8)[0], pixels)  # seeded


@pytest.mark.slow
def test_paper_configuration_exports(tmp_path):
    """The full paper model (IR-50, MobileFaceNet and Swin-B inside, 224 px; random weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = ORSANet(ORSANetConfig(size="large"), LABELS7)
    path = save_model(tmp_path / "paper_large.safetensors", model, LABELS7, InputContract(224))
    out = export_onnx(path, tmp_path / "paper_large.onnx")
    model = load_model(path)
    graph = session(out)
    assert [(i.name, i.shape[1:]) for i in graph.get_inputs()] == [("images", [3, 224, 224])]
    for batch in (1, 2):
        images = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(images).logits
        (logits,) = graph.run(None, {"images": images.numpy()})
        torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=0)
    assert read_onnx_metadata(out)["config"]["parsing_source"] == "swin_b"


@pytest.mark.slow
def test_dynamo_exporter_is_the_fallback(paper_model, tmp_path, monkeypatch):
    """Where the TorchScript exporter fails, torch.export's (dynamo=True) writes the same graph."""
    import orsanet.export as export

    def broken(*args, **kwargs):
        raise RuntimeError("no TorchScript exporter")

    monkeypatch.setattr(export, "_torchscript_export", broken)
    out = export_onnx(paper_model, tmp_path / "dynamo.onnx")
    assert read_onnx_metadata(out)["exporter"] == "dynamo"
    model = load_model(paper_model)
    pixels = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = model(model.contract.normalise(pixels)).logits
    torch.testing.assert_close(OnnxFaceModel(out, threads=1).logits(pixels), expected, atol=1e-4, rtol=0)


def test_predict_and_eval_run_on_onnxruntime_with_pytorchs_answers(tiny_model, tmp_path, capsys):
    """``--backend onnxruntime`` (chosen by the .onnx suffix) gives the rows and figures PyTorch gives."""
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from orsanet.cli import main
    from orsanet.export import export_onnx

    onnx_path = export_onnx(tiny_model, tmp_path / "tiny.onnx")
    rows = {}
    for name, model in (("torch", tiny_model), ("onnx", onnx_path)):
        out = tmp_path / f"{name}.json"
        assert main(["predict", str(ASTRONAUT), "--model", str(model), "--json", str(out)]) == 0
        rows[name] = json.loads(out.read_text())["faces"][0]
    assert rows["onnx"]["expression"] == rows["torch"]["expression"]
    for label, p in rows["torch"]["probabilities"].items():
        assert abs(rows["onnx"]["probabilities"][label] - p) < 1e-4
    assert main(["predict", str(ASTRONAUT), "--model", str(onnx_path), "--save-vis", str(tmp_path / "v")]) == 2
    data = tmp_path / "data" / "happiness"
    data.mkdir(parents=True)
    Image.open(ASTRONAUT).convert("RGB").crop((150, 60, 300, 210)).resize((48, 48)).save(data / "face.png")
    reports = {}
    for name, model in (("torch", tiny_model), ("onnx", onnx_path)):
        assert main(["eval", str(model), str(tmp_path / "data"), "--json", str(tmp_path / f"e_{name}.json"),
                     "--per-image", "--workers", "0"]) == 0
        reports[name] = json.loads((tmp_path / f"e_{name}.json").read_text())
    assert reports["onnx"]["backend"] == "OnnxFaceModel"
    assert reports["onnx"]["per_image"]["probabilities"][0] == pytest.approx(
        reports["torch"]["per_image"]["probabilities"][0], abs=1e-4)


@needs_default
def test_int8_calibrates_on_a_datasets_validation_faces(tmp_path):
    from conftest import SHARED

    ferplus = SHARED / "data" / "ferplus"
    if not ferplus.is_dir():
        pytest.skip("needs ../shared/data/ferplus")
    from orsanet.checkpoint import read_metadata
    from orsanet.export import dataset_faces

    contract = read_metadata("default").contract
    pixels, source = dataset_faces(ferplus, contract, count=16)
    assert pixels.shape == (16, 3, contract.input_size, contract.input_size) and 0 <= pixels.min() <= pixels.max() <= 1
    assert "ferplus" in source and "16 faces" in source
    again, _ = dataset_faces(ferplus, contract, count=16)
    assert torch.equal(pixels, again)  # seeded
    out = export_onnx("default", tmp_path / "d.onnx", int8=True, calibration_data=ferplus, calibration_count=16)
    quantization = read_onnx_metadata(int8_graph_path(out))["quantization"]
    assert "16 faces of ferplus" in quantization["calibration"] and "minmax" in quantization["method"]
