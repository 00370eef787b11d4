"""Behaviour of the seeded occlusion generators (orsanet.occlusion) on synthetic faces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from orsanet.occlusion import (DEFAULT_LAYOUT, GROUPS, IMAGENET_MEAN, KINDS, REGIONS, ManifestWriter,
                               OcclusionAugment, apply, face_layout, image_seed, occlude, occlude_named,
                               photos_available, read_manifest, rebuild, region_box, square_side)
from orsanet.occlusion import textured as textured_module
from orsanet.priors.parsing_map import (FACE_OVAL, LOWER_INNER, LOWER_OUTER, NOSE, SUBJECT_LEFT_BROW,
                                        SUBJECT_LEFT_EYE, SUBJECT_RIGHT_BROW, SUBJECT_RIGHT_EYE, UPPER_INNER,
                                        UPPER_OUTER)

MEMBERS = [k for k in KINDS if k not in GROUPS]
DRAWABLE = [k for k in KINDS if k != "textured" and "textured" not in GROUPS.get(k, ()) or photos_available()]
EYES = SUBJECT_RIGHT_EYE + SUBJECT_LEFT_EYE
MOUTH = UPPER_OUTER + LOWER_OUTER
BLURRED = [k for k in MEMBERS if k not in REGIONS and not k.startswith("square")]  # kinds taking ``blur``
needs_photos = pytest.mark.skipif(not photos_available(), reason="scikit-image not installed")


def _arc(indices, centre, radii, start: float, stop: float) -> dict[int, tuple[float, float]]:
    """Spread ``indices`` evenly on an elliptic arc from angle ``start`` to ``stop``."""
    t = np.linspace(start, stop, len(indices))
    return {i: (centre[0] + radii[0] * math.cos(a), centre[1] + radii[1] * math.sin(a)) for i, a in zip(indices, t)}


def mean_face_points(shift=(0.0, 0.0), scale: float = 1.0, degrees: float = 0.0) -> torch.Tensor:
    """A synthetic average face: each part's mesh points on an ellipse, (468, 2) crop units,
    rotated and scaled about (0.5, 0.55), then shifted."""
    xy = np.tile([0.5, 0.55], (468, 1))
    n = len(FACE_OVAL)
    parts = _arc(FACE_OVAL, (0.5, 0.575), (0.35, 0.425), -math.pi / 2, -math.pi / 2 + 2 * math.pi * (n - 1) / n)
    for eye, cx in ((SUBJECT_RIGHT_EYE, 0.34), (SUBJECT_LEFT_EYE, 0.66)):
        parts.update(_arc(eye, (cx, 0.38), (0.085, 0.03), 0, 2 * math.pi * 15 / 16))
    for brow, cx in ((SUBJECT_RIGHT_BROW, 0.33), (SUBJECT_LEFT_BROW, 0.67)):
        parts.update(_arc(brow, (cx, 0.30), (0.11, 0.02), 0, 2 * math.pi * 9 / 10))
    parts.update(_arc(NOSE, (0.5, 0.5), (0.08, 0.14), -math.pi / 2, 3 * math.pi / 2 * 17 / 18))
    for upper, lower, r in ((UPPER_OUTER, LOWER_OUTER, (0.13, 0.05)), (UPPER_INNER, LOWER_INNER, (0.1, 0.02))):
        parts.update(_arc(upper, (0.5, 0.75), r, math.pi, 2 * math.pi))  # top half, right corner first
        parts.update(_arc(lower, (0.5, 0.75), r, math.pi, 0.0))
    for i, p in parts.items():
        xy[i] = p
    a = math.radians(degrees)
    turn = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    xy = (xy - [0.5, 0.55]) @ turn.T * scale + [0.5, 0.55] + np.asarray(shift)
    return torch.tensor(xy, dtype=torch.float32)


def face_image(h: int = 112, w: int = 112, seed: int = 0) -> torch.Tensor:
    """A fixed noisy 'face' image (3, H, W) in [0, 1]."""
    return torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed))


def pixel_hits(mask: torch.Tensor, points: torch.Tensor, indices) -> torch.Tensor:
    """Mask values (bool) at the pixels holding the given mesh points."""
    h, w = mask.shape
    xy = points[list(indices)]
    x = (xy[:, 0] * w).long().clamp(0, w - 1)
    y = (xy[:, 1] * h).long().clamp(0, h - 1)
    return mask[y, x]


SHIFTED = mean_face_points(shift=(0.06, -0.04), scale=0.85)  # not where the average face is


# ------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("kind", DRAWABLE)
def test_same_seed_same_occlusion_and_other_seeds_differ(kind):
    image = face_image(56, 56)
    a = occlude(image, SHIFTED, kind, 7)
    b = occlude(image, SHIFTED, kind, 7)
    c = occlude(image, SHIFTED, kind, 8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert a[2] != c[2] and not torch.equal(a[0], c[0])
    assert a[0].dtype == torch.float32 and a[1].dtype == torch.bool and a[1].any()
    json.dumps(a[2])  # JSON-ready


def test_generator_seeds_are_recorded_and_replayable():
    image = face_image(56, 56)
    np_run = [occlude(image, None, "hand", np.random.default_rng(3))[2] for _ in range(2)]
    torch_gen = torch.Generator().manual_seed(3)
    first = occlude(image, None, "hand", torch_gen)
    assert first[2] != occlude(image, None, "hand", torch_gen)[2]  # the generator advanced
    again = occlude(image, None, "hand", torch.Generator().manual_seed(3))
    assert torch.equal(first[0], again[0])
    replay = occlude(image, None, "hand", first[2]["seed"])
    assert torch.equal(first[0], replay[0]) and np_run[0] == occlude(image, None, "hand", np_run[0]["seed"])[2]


def test_apply_redraws_the_geometry_bit_for_bit_after_json():
    image = face_image(80, 64)
    for kind in ("medical_mask", "sunglasses", "hair", "square_mean"):
        occluded, mask, geometry = occlude(image, SHIFTED, kind, 11)
        redrawn, mask2 = apply(image, None, json.loads(json.dumps(geometry)))
        assert torch.equal(occluded, redrawn) and torch.equal(mask, mask2)


# ------------------------------------------------------------------------------------ manifest
def test_manifest_round_trip_rebuilds_every_kind_bit_identically(tmp_path):
    path = tmp_path / "sub" / "occlusion.jsonl"
    images = {f"face_{k:02d}.png": face_image(56, 48, seed=k) for k in range(len(DRAWABLE))}
    originals = {}
    with ManifestWriter(path) as out:
        for (name, image), kind in zip(images.items(), DRAWABLE):
            occluded, mask, row = occlude_named(image, SHIFTED, name, kind, base_seed=5)
            out.write(row)
            originals[name] = (occluded, mask)
            assert len(path.read_text().splitlines()) == out.count  # flushed row by row
    rows = read_manifest(path)
    assert [r["image"] for r in rows] == list(images) and [r["kind"] for r in rows] == DRAWABLE
    for row in rows:
        rebuilt, mask = rebuild(images[row["image"]], SHIFTED, row)
        assert torch.equal(rebuilt, originals[row["image"]][0]) and torch.equal(mask, originals[row["image"]][1])
        assert row["seed"] == image_seed(5, row["image"]) == row["geometry"]["seed"]
        # without the geometry, kind + seed (+ the same points) re-sample the same occluder
        again, _ = rebuild(images[row["image"]], SHIFTED, {k: v for k, v in row.items() if k != "geometry"})
        assert torch.equal(again, rebuilt)


def test_image_seed_depends_only_on_base_seed_and_name():
    assert image_seed(0, "a.png") == image_seed(0, "a.png")
    assert len({image_seed(0, "a.png"), image_seed(1, "a.png"), image_seed(0, "b.png")}) == 3
    image = face_image(48, 48)
    alone = occlude_named(image, None, "b.png", "realistic", 0)[2]
    occlude_named(image, None, "a.png", "realistic", 0)  # another image first changes nothing
    assert occlude_named(image, None, "b.png", "realistic", 0)[2] == alone


# -------------------------------------------------------------------------------- the protocol
@pytest.mark.parametrize("size", [(48, 48), (56, 56), (112, 112), (224, 224), (64, 48)])
@pytest.mark.parametrize("area", [0.1, 0.2, 0.3])
def test_square_area_position_and_fill_values(size, area):
    h, w = size
    image = face_image(h, w)
    for seed, fill in enumerate(("black", "mean")):
        occluded, mask, geometry = occlude(image, None, f"square_{fill}", seed, area=area)
        side = square_side(area, h, w)
        assert abs(side - math.sqrt(area * h * w)) <= 0.5 and int(mask.sum()) == side * side
        ys, xs = mask.nonzero(as_tuple=True)
        assert int(ys.max() - ys.min()) + 1 == side == int(xs.max() - xs.min()) + 1  # one solid square
        expected = torch.tensor((0.0, 0.0, 0.0) if fill == "black" else IMAGENET_MEAN, dtype=torch.float32)
        assert torch.equal(occluded[:, mask], expected[:, None].expand(3, side * side))
        assert torch.equal(occluded[:, ~mask], image[:, ~mask])
        if fill == "mean":  # exactly 0 after ImageNet normalisation
            mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1), torch.tensor((0.229, 0.224, 0.225)).view(3, 1)
            assert torch.equal((occluded[:, mask] - mean) / std, torch.zeros(3, side * side))


def test_square_positions_are_spread_over_the_image():
    corners = {tuple(occlude(face_image(48, 48), None, "square_black", s, area=0.1)[2]["layers"][0]["box"][:2])
               for s in range(30)}
    assert len(corners) > 20


# ------------------------------------------------------------------------------------- regions
def test_region_boxes_follow_the_landmarks():
    image = face_image(112, 112)
    layout = face_layout(SHIFTED)
    for part, indices in (("mouth", MOUTH), ("nose", NOSE), ("eyes", EYES),
                          ("brows", SUBJECT_RIGHT_BROW + SUBJECT_LEFT_BROW)):
        occluded, mask, _ = occlude(image, SHIFTED, part, 1)
        assert pixel_hits(mask, SHIFTED, indices).all(), part
        assert torch.equal(occluded[:, ~mask], image[:, ~mask])
    upper = occlude(image, SHIFTED, "upper", 0)[1]
    assert pixel_hits(upper, SHIFTED, EYES).all() and not pixel_hits(upper, SHIFTED, MOUTH).any()
    left = occlude(image, SHIFTED, "left", 0)[1]
    assert pixel_hits(left, SHIFTED, SUBJECT_RIGHT_EYE).all() and not pixel_hits(left, SHIFTED, SUBJECT_LEFT_EYE).any()
    x0, _, x1, _ = layout.face
    assert left.nonzero()[:, 1].max() < math.ceil((x0 + x1) / 2 * 112)  # never across the midline
    mouth_box = region_box(layout, "mouth")
    assert region_box(DEFAULT_LAYOUT, "mouth") != mouth_box  # the landmarks moved it


def test_region_colour_can_be_given():
    occluded, mask, geometry = occlude(face_image(56, 56), None, "nose", 0, color=(1.0, 0.5, 0.0))
    assert torch.equal(occluded[:, mask][:, 0], torch.tensor([1.0, 0.5, 0.0]))


# ----------------------------------------------------------------------------------- realistic
@pytest.mark.parametrize("seed", range(4))
def test_realistic_occluders_cover_the_right_parts(seed):
    image, pts = face_image(112, 112), SHIFTED
    tip = face_layout(pts).nose_tip
    tip_px = (int(tip[1] * 112), int(tip[0] * 112))
    for kind in ("medical_mask", "cloth_mask"):
        mask = occlude(image, pts, kind, seed)[1]
        assert pixel_hits(mask, pts, MOUTH).all() and mask[tip_px], kind
        assert not pixel_hits(mask, pts, EYES).any(), kind
    sun = occlude(image, pts, "sunglasses", seed)[1]
    assert pixel_hits(sun, pts, EYES).float().mean() > 0.95
    assert not pixel_hits(sun, pts, MOUTH).any()
    clear = occlude(image, pts, "glasses", seed)[1]
    assert clear.any() and pixel_hits(clear, pts, EYES).float().mean() < 0.3  # lenses are not hidden
    for target, indices in (("mouth", MOUTH), ("eyes", EYES)):
        mask = occlude(image, pts, "hand", seed, target=target)[1]
        assert pixel_hits(mask, pts, indices).float().mean() > 0.3, target
    hair = occlude(image, pts, "hair", seed, cover=1.0)[1]
    assert pixel_hits(hair, pts, SUBJECT_RIGHT_BROW + SUBJECT_LEFT_BROW).float().mean() > 0.8
    assert not pixel_hits(hair, pts, MOUTH).any()
    for kind in ("scarf", "cup", "microphone"):
        mask = occlude(image, pts, kind, seed)[1]
        rows = mask.nonzero()[:, 0]
        assert len(rows) > 0 and rows.float().mean() > tip_px[0] * 0.9, kind  # the lower face
        assert not pixel_hits(mask, pts, EYES).any(), kind


@pytest.mark.parametrize("degrees", [-25, 20])
def test_occluders_follow_a_tilted_face(degrees):
    pts, image = mean_face_points(degrees=degrees), face_image(112, 112)
    for seed in range(3):
        assert pixel_hits(occlude(image, pts, "sunglasses", seed)[1], pts, EYES).float().mean() > 0.95
        medical = occlude(image, pts, "medical_mask", seed)[1]
        assert pixel_hits(medical, pts, MOUTH).all() and not pixel_hits(medical, pts, EYES).any()
        assert pixel_hits(occlude(image, pts, "mouth", seed)[1], pts, MOUTH).all()


def test_any_points_give_a_valid_occlusion():
    g, image = torch.Generator().manual_seed(0), face_image(48, 48)
    clouds = [torch.full((468, 2), 0.5), torch.rand(468, 2, generator=g) * 0.1 + 0.8,
              torch.rand(468, 2, generator=g) * 1.6 - 0.3]  # collapsed, tiny in a corner, wild
    for k, points in enumerate(clouds):
        for kind in DRAWABLE:
            occluded, mask, _ = occlude(image, points, kind, k)
            assert torch.isfinite(occluded).all() and 0 <= float(occluded.min()) <= float(occluded.max()) <= 1


@needs_photos
def test_textured_objects_cover_about_the_requested_area():
    for seed in range(4):
        occluded, mask, geometry = occlude(face_image(112, 112), SHIFTED, "textured", seed, area=0.05, blur=0.0)
        assert abs(float(mask.float().mean()) - 0.05) < 0.02
        assert geometry["layers"][0]["fill"]["name"] in textured_module.PHOTOS
        assert occluded[:, mask].std() > 0.02  # a photo, not a flat colour


@needs_photos
def test_photos_come_from_the_installed_package_only():
    folder = textured_module._data_dir()
    for name in textured_module.PHOTOS:
        assert (folder / f"{name}.png").is_file()
        assert min(textured_module.photo_shape(name)) >= 100


def test_textured_without_scikit_image_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "skimage", None)
    monkeypatch.setitem(__import__("sys").modules, "skimage.data", None)
    with pytest.raises(ImportError, match="scikit-image"):
        textured_module._data_dir()
    monkeypatch.setattr("orsanet.occlusion.augment.photos_available", lambda: False)
    with pytest.raises(ImportError, match="scikit-image"):
        OcclusionAugment({"realistic": 1.0})
    OcclusionAugment({"regions": 1.0})  # fine without it


@pytest.mark.parametrize("kind", [k for k in DRAWABLE if k in MEMBERS])
def test_pixels_outside_the_mask_are_unchanged(kind):
    image, h = face_image(96, 96), 96
    hard = {"blur": 0.0} if kind in BLURRED else {}
    for seed in range(3):
        occluded, mask, _ = occlude(image, SHIFTED, kind, seed, **hard)
        changed = (occluded != image).any(0)
        if kind == "glasses":  # only the faint lens tint and glare may touch unmasked pixels
            assert (occluded - image).abs()[:, changed & ~mask].max() <= 0.36
        else:
            assert not (changed & ~mask).any()
        if kind in BLURRED:  # soft edges: changes reach at most half the blur beyond the mask
            occluded, mask, _ = occlude(image, SHIFTED, kind, seed, blur=0.03)
            band = math.ceil(0.03 * h / 2) + 1
            near = F.max_pool2d(mask[None, None].float(), 2 * band + 1, 1, band)[0, 0].bool()
            outside = (occluded != image).any(0) & ~near
            assert kind == "glasses" or not outside.any()


# ----------------------------------------------------------------------------- inputs and sizes
@pytest.mark.parametrize("size", [(48, 48), (56, 56), (112, 112), (224, 224), (64, 48), (48, 80)])
def test_every_kind_works_at_any_size_with_and_without_points(size):
    h, w = size
    image = face_image(h, w)
    for k, kind in enumerate(DRAWABLE):
        points = SHIFTED if k % 2 else None
        occluded, mask, _ = occlude(image, points, kind, k)
        assert occluded.shape == (3, h, w) and mask.shape == (h, w) and mask.any(), kind
        assert 0.0 <= float(occluded.min()) and float(occluded.max()) <= 1.0


def test_without_points_the_average_face_is_used():
    image = face_image(112, 112)
    assert face_layout(None) is DEFAULT_LAYOUT
    nan_points = torch.full((468, 2), float("nan"))
    assert occlude(image, None, "medical_mask", 3)[2] == occlude(image, nan_points, "medical_mask", 3)[2]
    mask = occlude(image, None, "mouth", 0)[1]
    assert mask[int(0.75 * 112), 56] and not mask[int(0.38 * 112), int(0.33 * 112)]
    medical = occlude(image, None, "medical_mask", 0)[1]
    assert medical[int(0.75 * 112), 56] and not medical[int(0.38 * 112), int(0.34 * 112)]
    sun = occlude(image, None, "sunglasses", 0)[1]
    assert sun[int(0.38 * 112), int(0.34 * 112)] and sun[int(0.38 * 112), int(0.66 * 112)]


def test_one_geometry_draws_the_same_occluder_at_any_resolution():
    geometry = occlude(face_image(112, 112), SHIFTED, "medical_mask", 2)[2]
    small = apply(face_image(112, 112), None, geometry)[1].float()
    large = apply(face_image(224, 224), None, geometry)[1].float()
    assert (F.avg_pool2d(large[None, None], 2)[0, 0] - small).abs().mean() < 0.02


def test_groups_pick_members_and_bad_arguments_are_refused():
    image = face_image(56, 56)
    picked = {occlude(image, None, "regions", s)[2]["kind"] for s in range(40)}
    assert picked <= set(REGIONS) and len(picked) >= 5
    if photos_available():  # the realistic group includes the photo-textured kind
        realistic = {occlude(image, None, "realistic", s)[2]["kind"] for s in range(40)}
        assert realistic <= set(GROUPS["realistic"]) and len(realistic) >= 6
    geometry = occlude(image, None, "square", 0, area=0.2)[2]
    assert geometry["group"] == "square" and geometry["params"]["area"] == 0.2
    with pytest.raises(ValueError, match="unknown occlusion kind"):
        occlude(image, None, "balaclava", 0)
    with pytest.raises(TypeError, match="no parameter"):
        occlude(image, None, "hand", 0, area=0.3)


# ------------------------------------------------------------------------------------- augment
def test_batch_augment_shapes_reproducibility_and_masks():
    b, h = 12, 56
    images = torch.rand(b, 3, h, h, generator=torch.Generator().manual_seed(0))
    points = torch.stack([SHIFTED] * b)
    valid = torch.tensor([True, False] * (b // 2))
    kinds = {"realistic": 0.5, "square": 0.3, "regions": 0.2} if photos_available() else {"square": 0.5, "regions": 0.5}

    def run(seed, pts=points, ok=valid, p=0.7):
        return OcclusionAugment(kinds, p=p, generator=torch.Generator().manual_seed(seed))(images, pts, ok)

    out, masks = run(0)
    assert out.shape == images.shape and out.dtype == images.dtype and masks.shape == (b, h, h)
    assert masks.dtype == torch.bool and masks.flatten(1).any(1).sum() >= 4
    untouched = ~masks.flatten(1).any(1)
    assert torch.equal(out[untouched], images[untouched])
    again, masks_again = run(0)
    assert torch.equal(out, again) and torch.equal(masks, masks_again)
    assert not torch.equal(run(1)[0], out)
    nan_points = points.clone()
    nan_points[~valid] = float("nan")  # invalid rows fall back to the average face either way
    assert torch.equal(run(0, nan_points, None)[0], out)
    none, none_masks = run(0, p=0.0)
    assert torch.equal(none, images) and not none_masks.any()
    all_masks = run(0, None, None, p=1.0)[1]
    assert all_masks.flatten(1).any(1).all()
