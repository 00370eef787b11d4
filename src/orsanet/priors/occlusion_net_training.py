"""Teaching the occlusion-aware prior network (``orsanet train-priors``), and measuring it.

Each step takes a batch of FERPlus training faces (the input contract's crops), moves them with
the mesh points cached for them (flip, rotation, scale, shift: ``BatchAugment``), and hides part of
most faces with the realistic generators or a random box. The targets come from the *clean* face:

- parsing: the mesh's 11-class map, with the share of each cell the occluder covers moved to the
  ``occluded`` class;
- heatmaps: the mesh's part heatmaps, hidden parts included (where the parts are);
- visibility: whether most of a part's mesh points are left uncovered;
- face: 1, and 0 for an eighth of the batch replaced by its own shuffled tiles.

Faces on which the mesh found nothing train the occluded class and the face score only.
A run is resumable: the state is written atomically every ``save_every`` steps and at the end.

Shuffled tiles are no real non-faces: the trained face score stays near 1 on any picture. So the
stage ends with ``refit_face_score``: the face score's weights alone (one row of the global head,
on the frozen encoder's pooled features) are fitted again by logistic regression, faces (clean and
occluded FERPlus training faces) against crops of real faceless photos (``FACELESS_PHOTOS``) and
the tiles. Every other output, hence every prior the classifier reads, is left as it was.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from orsanet.contract import InputContract
from orsanet.fileio import atomic_path
from orsanet.models.mesh_priors import GROUP_OF_POINT, GROUP_POINTS, part_heatmaps
from orsanet.priors.face_priors import PRIOR_SIZE, MeshPriors
from orsanet.priors.occlusion_net import (
    NET_SIZE,
    NUM_CLASSES,
    NUM_PARTS,
    OCCLUDED,
    OcclusionPriorNet,
    part_centres,
)

log = logging.getLogger(__name__)
STATE_FILE = "prior-net-state.pt"
WEIGHTS_FILE = "occlusion-priors.safetensors"
# The occluders the network learns from: every realistic kind, the paper's squares and part regions.
TRAIN_KINDS = {"realistic": 0.6, "square": 0.25, "regions": 0.15}
# Photos of scikit-image's wheel without a human face (``astronaut`` and ``camera`` show one): the
# face score's real negatives. Three others are held out to measure it, with the 100 non-faces and
# 100 faces of its LFW subset (25 px grey crops).
FACELESS_PHOTOS = ("brick", "cell", "chelsea", "chessboard_GRAY", "clock_motion", "coffee", "coins", "color", "grass",
                   "gravel", "horse", "ihc", "logo", "microaneurysms", "moon", "motorcycle_left", "page", "phantom",
                   "text")
HELD_OUT_PHOTOS = ("hubble_deep_field.jpg", "retina.jpg", "rocket.jpg")


@dataclass
class PriorNetRecipe:
    root: str
    output_dir: str = "runs/occlusion-priors"
    input_size: int = 64          # the contract's crop the faces are read at (the network resizes to 56)
    width: int = 24
    epochs: int = 3
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    occlusion_p: float = 0.85     # share of faces hidden by a generator
    box_p: float = 0.25           # and by a random-colour box
    seed: int = 0
    save_every: int = 100
    prior_cache: str = "~/.cache/orsanet/priors"
    face_faces: int = 3000        # face score refit: training faces (clean, and as many occluded)
    face_crops: int = 200         # and crops per faceless photo


def clean_targets(mesh: MeshPriors, geometry: dict, hidden: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Targets from the clean face's mesh geometry and the occluder mask ``hidden (B, S, S)``."""
    drawn = mesh.draw(geometry)  # no mask: the clean face as it is
    valid = mesh.valid(geometry)
    b = len(valid)
    if hidden is None:
        hidden = torch.zeros(b, 1, 1, dtype=torch.bool)
    covered = F.adaptive_avg_pool2d(hidden.float().unsqueeze(1), PRIOR_SIZE)  # (B, 1, 28, 28)
    parsing = torch.cat([drawn["parsing_prior"] * (1 - covered), covered], 1)
    landmarks = drawn["landmark_prior"]
    heatmaps = part_heatmaps(landmarks)
    height, width = hidden.shape[-2:]
    ix = (landmarks[..., 0] * width).long().clamp(0, width - 1)
    iy = (landmarks[..., 1] * height).long().clamp(0, height - 1)
    point_hidden = hidden.flatten(1).gather(1, iy * width + ix).float()[:, GROUP_POINTS]  # (B, P)
    share = torch.zeros(b, NUM_PARTS).index_add_(1, GROUP_OF_POINT, point_hidden)
    share = share / torch.bincount(GROUP_OF_POINT, minlength=NUM_PARTS).float()
    return {"parsing": parsing, "heatmaps": heatmaps, "visibility": (share < 0.5).float(),
            "covered": covered.squeeze(1), "valid": valid}


def shuffled_tiles(pixels: torch.Tensor, generator: torch.Generator, tiles: int = 4) -> torch.Tensor:
    """Non-faces made from faces: each image cut into ``tiles x tiles`` blocks, put back in random order."""
    b, c, s, _ = pixels.shape
    t = s // tiles
    cropped = pixels[..., : t * tiles, : t * tiles]
    blocks = cropped.unfold(2, t, t).unfold(3, t, t).reshape(b, c, tiles * tiles, t, t)
    order = torch.stack([torch.randperm(tiles * tiles, generator=generator) for _ in range(b)])
    blocks = blocks[torch.arange(b)[:, None], :, order].permute(0, 2, 1, 3, 4)
    out = blocks.reshape(b, c, tiles, tiles, t, t).permute(0, 1, 2, 4, 3, 5).reshape(b, c, t * tiles, t * tiles)
    return F.interpolate(out, size=(s, s), mode="nearest") if t * tiles != s else out


def prior_net_loss(out: dict, targets: dict, is_face: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Soft cross-entropy on the 12-class map, BCE on heatmaps, visibility and the face score."""
    use = (targets["valid"] & is_face).float()
    n = use.sum().clamp_min(1)
    log_p = out["parsing"].log_softmax(1)
    parsing = -(targets["parsing"] * log_p).sum(1).mean((1, 2))
    occluded = F.binary_cross_entropy(log_p[:, OCCLUDED].exp().clamp(1e-6, 1 - 1e-6), targets["covered"],
                                      reduction="none").mean((1, 2))
    heatmaps = F.binary_cross_entropy_with_logits(out["heatmaps"], targets["heatmaps"], reduction="none").mean((1, 2, 3))
    visibility = F.binary_cross_entropy_with_logits(out["visibility"], targets["visibility"], reduction="none").mean(1)
    face = F.binary_cross_entropy_with_logits(out["face"], is_face.float())
    terms = {"parsing": (parsing * use).sum() / n, "occluded": (occluded * is_face).sum() / is_face.sum().clamp_min(1),
             "heatmaps": 10 * (heatmaps * use).sum() / n, "visibility": (visibility * use).sum() / n, "face": 0.2 * face}
    return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}


def open_split(root: str, split: str):
    from orsanet.data import open_dataset

    return open_dataset("ferplus", root, split, label_mode="majority")


def load_batch(dataset, contract: InputContract, indices) -> torch.Tensor:
    return torch.stack([contract.pixels(dataset.load_image(int(i))) for i in indices])


def train_prior_net(recipe: PriorNetRecipe, resume: bool = False, max_minutes: float | None = None) -> Path:
    """Run (or resume) the training stage; returns the weights file written into ``output_dir``."""
    from orsanet.engine.batches import BatchAugment
    from orsanet.priors.cache import cached_geometry

    out_dir = Path(recipe.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    contract = InputContract(input_size=recipe.input_size, color="gray")
    mesh = MeshPriors()
    train = open_split(recipe.root, "train")
    geometry = cached_geometry(train, mesh, contract, Path(recipe.prior_cache).expanduser())
    network = OcclusionPriorNet(recipe.width)
    optimizer = torch.optim.AdamW(network.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = len(train) // recipe.batch_size
    total = steps_per_epoch * recipe.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    step, spent = 0, 0.0
    state_path = out_dir / STATE_FILE
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, spent = state["step"], state["minutes"]
        log.info("resumed %s at step %d of %d (%.1f minutes spent)", out_dir, step, total, spent)
    augment = BatchAugment(mesh, flip=True, rotation=10, scale=(0.9, 1.1), shift=0.06, occluder_p=recipe.box_p,
                           occluder_area=(0.05, 0.3), occlusion_kinds=TRAIN_KINDS, occlusion_p=recipe.occlusion_p)

    def save() -> None:
        with atomic_path(state_path) as temporary:
            torch.save({"model": network.state_dict(), "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(), "step": step, "minutes": spent}, temporary)

    started = time.perf_counter() - spent * 60
    bar = tqdm(total=total, initial=step, desc="prior net", dynamic_ncols=True)
    network.train()
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(recipe.seed + epoch))
        indices = order[within * recipe.batch_size:(within + 1) * recipe.batch_size]
        torch.manual_seed(recipe.seed * 100003 + step)  # the same occluders after a resume
        pixels = load_batch(train, contract, indices)
        batch_geometry = {key: value[indices] for key, value in geometry.items()}
        pixels, batch_geometry, hidden = augment(pixels, batch_geometry)
        targets = clean_targets(mesh, batch_geometry, hidden)
        is_face = torch.rand(len(pixels)) >= 0.125
        pixels = torch.where(is_face.view(-1, 1, 1, 1), pixels, shuffled_tiles(pixels, torch.Generator().manual_seed(step)))
        loss, terms = prior_net_loss(network(pixels), targets, is_face)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        spent = (time.perf_counter() - started) / 60
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", **{k: f"{v:.3f}" for k, v in terms.items()})
        if step % recipe.save_every == 0 or step == total:
            save()
        if max_minutes and spent >= max_minutes and step < total:
            save()
            log.info("stopping at step %d: the %.0f-minute limit is spent (resume with --resume)", step, max_minutes)
            break
    bar.close()
    weights = out_dir / WEIGHTS_FILE
    if step >= total:
        info = {"recipe": asdict(recipe), "minutes": round(spent, 2), "steps": step}
        if photos_dir() is not None:
            started_refit = time.perf_counter()
            info["face_score"] = refit_face_score(network.eval(), recipe, train, geometry, recipe.face_faces,
                                                  recipe.face_crops)
            info["minutes"] = round(spent + (time.perf_counter() - started_refit) / 60, 2)
        else:
            log.warning("scikit-image is not installed: the face score keeps its shuffled-tile training "
                        "(it is then no face detector)")
        write_weights(network, weights, info)
        log.info("prior net trained: %d steps in %.1f minutes -> %s", step, info["minutes"], weights)
    return weights


def photos_dir() -> Path | None:
    """scikit-image's folder of shipped sample photos, or None without scikit-image."""
    try:
        import skimage.data
    except ImportError:
        return None
    return Path(skimage.data.__file__).parent


def photo_crops(paths: list[Path], per_photo: int, contract: InputContract, seed: int = 0) -> torch.Tensor:
    """``per_photo`` random squares of each photo (sides 10-100 % of its shorter edge, at least 12 px),
    as the contract cuts them: ``(N, 3, S, S)`` in [0, 1]."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    crops = []
    for path in paths:
        photo = Image.open(path).convert("RGB")
        width, height = photo.size
        for u in torch.rand(per_photo, 3, generator=generator).tolist():
            side = max(12.0, (0.1 + 0.9 * u[0]) * min(width, height))
            x0, y0 = u[1] * (width - side), u[2] * (height - side)
            crops.append(contract.pixels(photo.crop((round(x0), round(y0), round(x0 + side), round(y0 + side)))))
    return torch.stack(crops)


def pooled_features(network: OcclusionPriorNet, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """What the global head reads: the deepest encoder features averaged over the grid, ``(N, 4w)``."""
    with torch.no_grad():
        return torch.cat([network.encode(pixels[i:i + batch_size])[2].mean((2, 3))
                          for i in range(0, len(pixels), batch_size)])


def occluded_faces(dataset, geometry: dict, contract: InputContract, count: int, seed: int) -> tuple[torch.Tensor, ...]:
    """``count`` faces of ``dataset`` drawn at random (seeded): clean, and each hidden by a realistic
    occluder or a square (``(count, 3, S, S)`` each)."""
    from orsanet.occlusion import OcclusionAugment

    mesh = MeshPriors()
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count]
    clean = load_batch(dataset, contract, indices)
    picked = {key: value[indices] for key, value in geometry.items()}
    occlusion = OcclusionAugment({"realistic": 0.6, "square": 0.4}, p=1.0, generator=torch.Generator().manual_seed(seed))
    occluded, _ = occlusion(clean, mesh.points(picked), mesh.valid(picked))
    return clean, occluded


def refit_face_score(network: OcclusionPriorNet, recipe: PriorNetRecipe, train, geometry: dict, faces: int = 3000,
                     per_photo: int = 200, face_share: float = 0.7) -> dict:
    """Fit the face score's row of ``network.global_head`` again (in place): logistic regression of
    ``faces`` clean and as many occluded training faces against ``per_photo`` crops of each of
    ``FACELESS_PHOTOS`` and the faces' shuffled tiles (photos and tiles weigh alike), all cut at the
    network's own size and at the recipe's; faces weigh ``face_share`` of the loss; a small L2 term
    pulls towards the old row. Returns the held-out shares (``held_out_features``, ``share_called_faces``)
    before and after."""
    sizes = sorted({NET_SIZE, recipe.input_size})
    sets: list[list[torch.Tensor]] = [[], [], []]  # features of faces, photo crops, tiles
    for size in sizes:
        contract = InputContract(input_size=size, color="gray")
        clean, occluded = occluded_faces(train, geometry, contract, faces, recipe.seed + 1)
        photos = photo_crops([photos_dir() / f"{name}.png" for name in FACELESS_PHOTOS], per_photo, contract,
                             recipe.seed)
        tiles = shuffled_tiles(clean, torch.Generator().manual_seed(recipe.seed))
        for kept, pixels in zip(sets, (torch.cat([clean, occluded]), photos, tiles)):
            kept.append(pooled_features(network, pixels))
    faces_x, photos_x, tiles_x = (torch.cat(kept) for kept in sets)
    features = torch.cat([faces_x, photos_x, tiles_x])
    is_face = torch.cat([torch.ones(len(faces_x)), torch.zeros(len(photos_x) + len(tiles_x))])
    weight = torch.cat([torch.full((len(faces_x),), face_share / len(faces_x)),
                        torch.full((len(photos_x),), (1 - face_share) / 2 / len(photos_x)),
                        torch.full((len(tiles_x),), (1 - face_share) / 2 / len(tiles_x))])
    head = network.global_head
    held_out = {size: held_out_features(network, recipe, size, per_photo=per_photo) for size in sizes}
    start = torch.cat([head.weight[NUM_PARTS], head.bias[NUM_PARTS:NUM_PARTS + 1]]).detach()
    before = {size: share_called_faces(sets, start) for size, sets in held_out.items()}
    row = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([row], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = (F.binary_cross_entropy_with_logits(face_logits(features, row), is_face, reduction="none")
                 * weight).sum()
        value = value + 1e-3 * (row[:-1] - start[:-1]).pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        head.weight[NUM_PARTS] = row[:-1]
        head.bias[NUM_PARTS] = row[-1]
    after = {size: share_called_faces(sets, row.detach()) for size, sets in held_out.items()}
    for size in sizes:
        log.info("face score refitted; held out at %d px, share scored a face (>= 0.5) before -> after: %s", size,
                 ", ".join(f"{key} {before[size][key]:.3f} -> {after[size][key]:.3f}" for key in after[size]))
    return {"faces": len(faces_x), "photo_crops": len(photos_x), "tiles": len(tiles_x), "face_share": face_share,
            "sizes": sizes, "photos": list(FACELESS_PHOTOS), "held_out_before": before, "held_out": after}


def face_logits(features: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """The face score's logits ``(N,)`` of pooled features ``(N, C)`` under ``row`` (C weights, then the bias)."""
    return features @ row[:-1] + row[-1]


def share_called_faces(sets: dict[str, torch.Tensor], row: torch.Tensor) -> dict[str, float]:
    """Share of each set of pooled features that ``row`` calls a face (probability >= 0.5)."""
    return {name: round(float((face_logits(features, row) >= 0).float().mean()), 4) for name, features in sets.items()}


def held_out_features(network: OcclusionPriorNet, recipe: PriorNetRecipe, size: int = NET_SIZE, faces: int = 1500,
                      per_photo: int = 200) -> dict[str, torch.Tensor]:
    """Pooled features of each held-out set, cut at ``size`` px: ``faces`` FERPlus Valid faces (of
    ``recipe.root``) clean and occluded, the LFW subset's faces and non-faces, and ``per_photo``
    crops of each of ``HELD_OUT_PHOTOS``."""
    import numpy as np
    from PIL import Image

    from orsanet.priors.cache import cached_geometry

    contract = InputContract(input_size=size, color="gray")
    valid = open_split(recipe.root, "valid")
    # the mesh points (in [0, 1] of the crop) that place the occluders: those of the recipe's crop
    geometry = cached_geometry(valid, MeshPriors(), InputContract(input_size=recipe.input_size, color="gray"),
                               Path(recipe.prior_cache).expanduser())
    clean, occluded = occluded_faces(valid, geometry, contract, faces, seed=2)
    lfw = np.load(photos_dir() / "lfw_subset.npy")  # (200, 25, 25) in [0, 1]: 100 faces, then 100 non-faces
    lfw = torch.stack([contract.pixels(Image.fromarray((image * 255).round().astype(np.uint8))) for image in lfw])
    photos = photo_crops([photos_dir() / name for name in HELD_OUT_PHOTOS], per_photo, contract, seed=1)
    sets = {"valid_faces": clean, "valid_occluded_faces": occluded, "lfw_faces": lfw[:100],
            "lfw_non_faces": lfw[100:], "held_out_photo_crops": photos}
    return {name: pooled_features(network, pixels) for name, pixels in sets.items()}


def write_weights(network: OcclusionPriorNet, path: Path, info: dict) -> None:
    from safetensors.torch import save_file

    meta = {"width": str(network.down1[0][0].out_channels), "classes": str(NUM_CLASSES), "parts": str(NUM_PARTS),
            "input": "contract pixels (B, 3, S, S) in [0, 1], grey, resized to 56", "info": json.dumps(info)}
    with atomic_path(path) as temporary:
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(temporary), metadata=meta)


@torch.no_grad()
def measure_prior_net(root: str, weights: str | Path, kinds: tuple[str, ...] = ("realistic", "square"),
                      limit: int | None = None, batch_size: int = 64, input_size: int = 64,
                      prior_cache: str = "~/.cache/orsanet/priors") -> dict:
    """On FERPlus Valid faces hidden by each of ``kinds`` (seeded, one occluder per face):

    - ``occluder_iou``: IoU of the network's occluded cells (p >= 0.5) with the cells the occluder
      covers by half or more, over the whole split;
    - ``parsing_agreement``: on the visible cells of faces the mesh fits when clean, the share whose
      class (argmax of the 11 face classes) matches the clean face's mesh map, for the network and
      for the mesh fitted again on the occluded face (``mesh_agreement``);
    - ``mesh_found``: how often the mesh still finds the occluded face;
    - ``hidden_part_error`` / ``visible_part_error``: on the same faces, the mean distance (a share of
      the crop's side) between the network's part centres and the clean face's mesh part centres, for
      the parts the occluder hides (half their points or more) and for the others: how well the
      network guesses the face it cannot see, and places what it sees.
    """
    from orsanet.occlusion import OcclusionAugment
    from orsanet.priors.cache import cached_geometry
    from orsanet.priors.occlusion_net import load_prior_net

    contract = InputContract(input_size=input_size, color="gray")
    mesh = MeshPriors()
    valid_set = open_split(root, "valid")
    geometry = cached_geometry(valid_set, mesh, contract, Path(prior_cache).expanduser())
    network = load_prior_net(weights)
    count = min(limit or len(valid_set), len(valid_set))
    occlusions = {kind: OcclusionAugment({kind: 1.0}, p=1.0, generator=torch.Generator().manual_seed(1234))
                  for kind in kinds}
    # per kind: occluder intersection, union, (net, mesh) agreeing and visible cells, mesh fits
    sums = {kind: {"inter": 0.0, "union": 0.0, "net": [0.0, 0.0], "mesh": [0.0, 0.0], "found": 0,
                   "hidden": [0.0, 0.0], "visible": [0.0, 0.0]} for kind in kinds}
    for start in tqdm(range(0, count, batch_size), desc=f"prior net on {', '.join(kinds)}", dynamic_ncols=True):
        indices = torch.arange(start, min(count, start + batch_size))
        pixels = load_batch(valid_set, contract, indices)  # read once, hidden by every kind in turn
        clean = {key: value[indices] for key, value in geometry.items()}
        for kind, occlusion in occlusions.items():
            total = sums[kind]
            occluded, hidden = occlusion(pixels, mesh.points(clean), mesh.valid(clean))
            targets = clean_targets(mesh, clean, hidden)
            output = network(occluded)
            predicted = output["parsing"].softmax(1)
            error = (part_centres(output["heatmaps"].sigmoid()) - part_centres(targets["heatmaps"])).norm(dim=-1)
            for name, chosen in (("hidden", targets["visibility"] < 0.5), ("visible", targets["visibility"] >= 0.5)):
                chosen = chosen & targets["valid"].view(-1, 1)  # (B, 8) parts of faces the mesh fits when clean
                total[name][0] += float(error[chosen].sum())
                total[name][1] += float(chosen.sum())
            truth_occ = targets["covered"] >= 0.5
            pred_occ = predicted[:, OCCLUDED] >= 0.5
            total["inter"] += float((truth_occ & pred_occ).sum())
            total["union"] += float((truth_occ | pred_occ).sum())
            refit = mesh.measure(occluded)
            total["found"] += int(mesh.valid(refit).sum())
            refit_map = mesh.draw(refit)["parsing_prior"]
            ok = targets["valid"].view(-1, 1, 1) & ~truth_occ
            truth_class = targets["parsing"][:, :OCCLUDED].argmax(1)
            for name, classes in (("net", predicted[:, :OCCLUDED].argmax(1)), ("mesh", refit_map.argmax(1))):
                total[name][0] += float(((classes == truth_class) & ok).sum())
                total[name][1] += float(ok.sum())
    report = {}
    for kind, total in sums.items():
        report[kind] = {"occluder_iou": total["inter"] / max(total["union"], 1),
                        "parsing_agreement": total["net"][0] / max(total["net"][1], 1),
                        "mesh_agreement": total["mesh"][0] / max(total["mesh"][1], 1),
                        "mesh_found": total["found"] / count,
                        "hidden_part_error": total["hidden"][0] / max(total["hidden"][1], 1),
                        "visible_part_error": total["visible"][0] / max(total["visible"][1], 1),
                        "hidden_parts": int(total["hidden"][1]), "images": count}
        log.info("%s: %s", kind, json.dumps({k: round(v, 4) for k, v in report[kind].items()}))
    return report
