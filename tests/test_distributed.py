"""DDP on the CPU: two gloo processes run one training epoch of the real engine together."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from test_train import TINY_MODEL, make_folder_tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, overrides: list[str], result_dir: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": "2", "LOCAL_RANK": str(rank)})
    import torch.distributed as dist

    from orsanet.engine.config import load_config
    from orsanet.engine.train import Trainer

    trainer = Trainer(load_config(None, overrides))
    assert trainer.dist.world_size == 2 and len(trainer.sampler) == 9  # 18 training images split over 2 ranks
    trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.model.parameters() if p.requires_grad])
    torch.save(flat, os.path.join(result_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_two_process_gloo_training_keeps_replicas_identical(tmp_path):
    data = make_folder_tree(tmp_path / "faces", {"train": 6, "valid": 2})
    overrides = [f"data.root={data}", "data.kind=folder", "data.valid_split=valid", "data.test_split=null",
                 "data.num_workers=0", "optim.epochs=1", "optim.batch_size=3", "optim.lr=0.001",
                 "run.threads=1", "run.device=cpu", f"run.output_dir={tmp_path / 'run'}", *TINY_MODEL]
    mp.spawn(_worker, args=(_free_port(), overrides, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(rank0, rank1), "DDP replicas diverged"
    assert (tmp_path / "run" / "best.safetensors").exists() and (tmp_path / "run" / "metrics.jsonl").exists()


def test_eval_sharded_over_two_processes_equals_one_process(tiny_model, tmp_path):
    """``torchrun`` eval: each process takes its share of the images; rank 0 merges; same report."""
    import json
    import subprocess
    import sys

    from test_eval import make_tree

    root = make_tree(tmp_path / "data")
    common = ["-m", "orsanet.cli", "eval", str(tiny_model), str(root), "--occlusion", "0.2", "--per-image",
              "--workers", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, *common, "--json", str(tmp_path / "one.json")], capture_output=True,
                            text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              *common, "--json", str(tmp_path / "two.json")], capture_output=True, text=True, env=env,
                             timeout=600)
    assert sharded.returncode == 0, sharded.stderr[-2000:]
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert one["per_image"]["names"] == two["per_image"]["names"] and one["confusion_matrix"] == two["confusion_matrix"]
    for a, b in zip(one["per_image"]["probabilities"], two["per_image"]["probabilities"]):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-5  # batches of other sizes: float rounding only
    assert one["occlusion"] == two["occlusion"] and one["num_images"] == two["num_images"] == 9


def test_predict_sharded_over_two_processes_equals_one_process(tiny_model, tmp_path):
    """``torchrun`` predict: each process takes its share of the files; rank 0 merges the rows in order."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from PIL import Image

    examples = Path(__file__).resolve().parents[1] / "examples"
    folder = tmp_path / "in"
    (folder / "b").mkdir(parents=True)
    photo = Image.open(examples / "astronaut.jpg").convert("RGB")
    for name in ("a1.jpg", "a2.jpg", "b/a1.jpg"):
        photo.save(folder / name)
    Image.new("RGB", (64, 64), (90, 90, 90)).save(folder / "flat.png")
    (folder / "bad.jpg").write_bytes(b"not an image")
    common = ["-m", "orsanet.cli", "predict", str(folder), "--model", str(tiny_model), "--min-face", "200"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outputs = {}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])):
        run = subprocess.run([sys.executable, *launcher, *common, "--json", str(tmp_path / f"{name}.json"),
                              "--csv", str(tmp_path / f"{name}.csv"), "--save-vis", str(tmp_path / f"vis_{name}")],
                             capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        outputs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert [r["file"] for r in outputs["one"]["faces"]] == [r["file"] for r in outputs["two"]["faces"]]
    for a, b in zip(outputs["one"]["faces"], outputs["two"]["faces"]):
        assert a["expression"] == b["expression"] and a["error"] == b["error"]
    assert (tmp_path / "one.csv").read_text().count("\n") == (tmp_path / "two.csv").read_text().count("\n")
    assert sorted(p.name for p in (tmp_path / "vis_one").iterdir()) == sorted(p.name for p in (tmp_path / "vis_two").iterdir())
    assert not list(tmp_path.glob("two.json.part*"))  # the parts are merged away
