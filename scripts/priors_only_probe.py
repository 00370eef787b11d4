#!/usr/bin/env python3
"""How much expression the default's priors carry on their own: a small classifier on the priors alone.

    python scripts/priors_only_probe.py ../shared/data/ferplus --json /tmp/probe.json

The shipped prior network measures every FERPlus face (the default model's contract crop); a small
CNN (two stride-2 convolutions, pooled, linear; 28 input channels: the 12-class parsing map and the
16 landmark channels, 28 x 28) learns the 8 classes from these maps only, never from the pixels.
The training faces are drawn once, 60 % of them hidden by the realistic occluders or the paper's
squares (seeded), as stage 3 trains. The epoch is chosen on Valid; the script prints test accuracy on
clean faces, under 30 % mean-colour squares and under a medical mask (seeded), beside what the
default gives on the same faces. If the priors alone hold little of the expression, a model has
little reason to read them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from orsanet.checkpoint import read_metadata
from orsanet.data import open_dataset
from orsanet.face_model import FaceModel
from orsanet.occlusion import OcclusionAugment

log = logging.getLogger("priors_only_probe")


def faces(root: str, split: str, contract, labels: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every face of a FERPlus split as the contract cuts it ``(N, 3, S, S)``, and its majority class."""
    dataset = open_dataset("ferplus", root, split, label_mode="majority", transform=contract.pixels)
    if list(dataset.label_names) != list(labels):
        raise SystemExit(f"{root}: classes {dataset.label_names} are not the default's {labels}")
    pairs = [dataset[i] for i in tqdm(range(len(dataset)), desc=f"read {split}", leave=False)]
    return torch.stack([p for p, _ in pairs]), torch.tensor([int(t) for _, t in pairs])


def hidden(pixels: torch.Tensor, kinds: dict, p: float, seed: int, area: tuple[float, float] = (0.1, 0.4),
           batch: int = 256) -> torch.Tensor:
    """The faces with ``kinds`` drawn on a share ``p`` of them (seeded; the average face places them)."""
    occlusion = OcclusionAugment(kinds, p=p, area=area, generator=torch.Generator().manual_seed(seed))
    return torch.cat([occlusion(pixels[i:i + batch])[0] for i in range(0, len(pixels), batch)])


@torch.no_grad()
def prior_maps(face: FaceModel, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """``(N, 28, 28, 28)``: the parsing prior and the landmark prior the default would read."""
    maps = []
    for i in range(0, len(pixels), batch):
        drawn = face.priors.draw(face.measure(pixels[i:i + batch]))
        maps.append(torch.cat([drawn["parsing_prior"], drawn["landmark_prior"]], 1))
    return torch.cat(maps)


@torch.no_grad()
def default_accuracy(face: FaceModel, pixels: torch.Tensor, targets: torch.Tensor, batch: int = 256) -> float:
    predicted = torch.cat([face.logits(pixels[i:i + batch]).argmax(1) for i in range(0, len(pixels), batch)])
    return float((predicted == targets).float().mean())


def probe_network(channels: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, 48, 3, 2, 1), nn.BatchNorm2d(48), nn.ReLU(),
                         nn.Conv2d(48, 96, 3, 2, 1), nn.BatchNorm2d(96), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(96, classes))


@torch.no_grad()
def accuracy(network: nn.Module, maps: torch.Tensor, targets: torch.Tensor) -> float:
    network.eval()
    predicted = torch.cat([network(maps[i:i + 512]).argmax(1) for i in range(0, len(maps), 512)])
    return float((predicted == targets).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="FERPlus folder")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    face = FaceModel.load("default", runtime="pytorch")
    contract, labels = read_metadata("default").contract, face.label_names
    mix = {"realistic": 0.4, "medical_mask": 0.1, "cloth_mask": 0.1, "scarf": 0.05, "hand": 0.05, "square": 0.3}
    train_pixels, train_targets = faces(args.data, "train", contract, labels)
    train_maps = prior_maps(face, hidden(train_pixels, mix, 0.6, seed=1))
    valid_pixels, valid_targets = faces(args.data, "valid", contract, labels)
    valid_maps = prior_maps(face, valid_pixels)
    test_pixels, test_targets = faces(args.data, "test", contract, labels)
    tests = {"clean": test_pixels, "square 30 %": hidden(test_pixels, {"square": 1.0}, 1.0, seed=2, area=(0.3, 0.3)),
             "medical mask": hidden(test_pixels, {"medical_mask": 1.0}, 1.0, seed=3)}
    test_maps = {name: prior_maps(face, pixels) for name, pixels in tests.items()}
    log.info("priors measured in %.1f minutes", (time.perf_counter() - started) / 60)

    network = probe_network(train_maps.shape[1], len(labels))
    optimizer = torch.optim.AdamW(network.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * (len(train_maps) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=steps)
    best, best_state, history = -1.0, None, []
    for epoch in range(args.epochs):
        network.train()
        order = torch.randperm(len(train_maps))
        for i in range(0, len(order) - 127, 128):
            batch = order[i:i + 128]
            loss = F.cross_entropy(network(train_maps[batch]), train_targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        valid = accuracy(network, valid_maps, valid_targets)
        history.append(round(100 * valid, 2))
        log.info("epoch %d: Valid %.2f %%", epoch + 1, 100 * valid)
        if valid > best:
            best, best_state = valid, {k: v.clone() for k, v in network.state_dict().items()}
    network.load_state_dict(best_state)
    report = {"valid_by_epoch": history, "chosen_epoch": history.index(max(history)) + 1,
              "priors_only": {name: round(100 * accuracy(network, maps, test_targets), 2)
                              for name, maps in test_maps.items()},
              "default": {name: round(100 * default_accuracy(face, pixels, test_targets), 2)
                          for name, pixels in tests.items()},
              "test_faces": len(test_targets), "minutes": round((time.perf_counter() - started) / 60, 1)}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
