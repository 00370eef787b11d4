"""Seeded, reproducible occlusion generators for face crops, returning exactly what is hidden.

Inputs: a crop ``image (3, H, W)`` float in [0, 1] (RGB pixels, not normalised) and optionally
its 468 MediaPipe face-mesh points ``(468, 2)`` in [0, 1] crop units (x right, y down); without
points, occluders are placed on an average FER2013-style face. Outputs: the occluded image
``(3, H, W)``, the mask ``(H, W)`` bool (True where the occluder hides the face: total alpha
above 1/2) and a JSON-ready geometry from which :func:`apply` re-draws it bit for bit.

    from orsanet.occlusion import occlude, apply, KINDS

    occluded, mask, geometry = occlude(image, points, "medical_mask", seed)
    again, same_mask = apply(image, points, geometry)      # identical, no random generator

Kinds (:data:`KINDS`):

- the paper's protocol: ``square_black`` (fill 0), ``square_mean`` (ImageNet mean = 0 after
  normalisation), one square of area fraction ``area`` at a uniform random position;
- boxes over a part: ``eyes``, ``brows``, ``nose``, ``mouth``, and the ``upper`` / ``lower`` /
  ``left`` / ``right`` half of the face ("left" = image left);
- realistic: ``medical_mask``, ``cloth_mask``, ``sunglasses``, ``glasses`` (frame only is
  masked), ``hand``, ``hair``, ``scarf``, ``cup``, ``microphone``, and ``textured`` (a patch of
  a scikit-image sample photo: needs the optional ``scikit-image``);
- groups that pick one member at random: ``square``, ``regions``, ``realistic``.

Also: :mod:`.manifest` (JSON Lines manifests, per-image seeds, :func:`rebuild`) and
:class:`OcclusionAugment` (batched training augmentation with masks).
"""

from .api import GROUPS, KINDS, apply, jsonable, occlude, sample, to_seed
from .augment import OcclusionAugment
from .layout import DEFAULT_LAYOUT, FaceLayout, face_layout
from .manifest import ManifestWriter, image_seed, iter_manifest, occlude_named, read_manifest, rebuild
from .regions import REGIONS, region_box
from .square import IMAGENET_MEAN, SQUARE_FILLS, square_side
from .textured import PHOTOS, photos_available

__all__ = [
    "GROUPS", "KINDS", "apply", "jsonable", "occlude", "sample", "to_seed",
    "OcclusionAugment",
    "DEFAULT_LAYOUT", "FaceLayout", "face_layout",
    "ManifestWriter", "image_seed", "iter_manifest", "occlude_named", "read_manifest", "rebuild",
    "REGIONS", "region_box",
    "IMAGENET_MEAN", "SQUARE_FILLS", "square_side",
    "PHOTOS", "photos_available",
]
