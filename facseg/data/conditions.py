"""The occluded test conditions: the test split again, each image under a fixed occluder, one test loader each.

Built from `data.occluded_test` (conf/data/lapa.yaml), in this order, each a stage of the results:

- `occluded`: occluders at random places hiding `coverage` of the face (the primary level);
- `occluded_severity/<c>`: the same at each coverage c of `severities` (the level equal to `coverage` is the
  primary condition itself, scored once and reported under both names);
- `occluded_target/<part>`: at the primary coverage, centred on a part of the class set (`parts`: the eyes under a
  bar like sunglasses, the mouth under a hand, the nose);
- `occluded_real`: real eyeglasses and hats cut out of a CelebAMask-HQ training split (facseg.data.occlusion),
  labelled as their class where the class set has it (CelebAMask-HQ's eye_g and hat), else background;
- `occluded_realigned`: the primary occluded photos, but cropped from what a face detector would see on them:
  LaPa-style landmarks perturbed where the occluder hides them, or YuNet's 5 points found on the occluded photo
  where the data has no landmarks. Every other condition is cropped from the clean photo's landmarks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facseg.data.crop import CropSettings, similarity_matrix, template_points
from facseg.data.labels import LabelMap
from facseg.data.landmarks import ALIGNMENT_POINTS
from facseg.data.occlusion import KINDS, FixedOcclusion, Occlusion
from facseg.data.real_occluders import RealOccluders, RealOcclusion

log = logging.getLogger(__name__)
REALIGN = ("perturbed", "detector")


@dataclass(frozen=True)
class Condition:
    name: str  # its stage in the results
    occlusion: Callable[..., Occlusion]  # (index, label, image) -> the image's occluder
    realign: str | None = None  # perturbed | detector: the crop found on the occluded photo, not the clean one
    landmark_error: float = 0.1  # perturbed: the error of a hidden point, in inter-ocular distances (std per axis)
    seed: int = 0


def build_conditions(
    spec: dict[str, Any], labels: LabelMap, settings: CropSettings, eval_resolution: str
) -> tuple[list[Condition], dict[str, str]]:
    """The conditions of `data.occluded_test`, and the aliases (a severity level that is the primary condition)."""
    spec = dict(spec)
    face = tuple(labels.ids(labels.face))
    seed, coverage = int(spec.get("seed", 0)), float(spec.get("coverage", 0.2))
    common = {
        "seed": seed,
        "kinds": tuple(spec.get("kinds", KINDS)),
        "textured": spec.get("textured", 0.5),
        "face": face,
    }
    primary = FixedOcclusion(coverage=coverage, **common)
    conditions, aliases = [Condition("occluded", primary)], {}
    for level in spec.get("severities") or ():
        name = f"occluded_severity/{float(level):g}"
        if float(level) == coverage:
            aliases[name] = "occluded"
        else:
            conditions.append(Condition(name, FixedOcclusion(**{**common, "coverage": float(level)})))
    for part, kinds in (spec.get("targets") or {}).items():
        if part not in labels.parts:  # a class set of one's own may have no eyes or mouth to aim at
            log.warning(
                "occluded_target/%s skipped: the class set %r names no part %r (its parts: %s; `parts` in its "
                "classes.yaml or conf/data/labels/*.yaml)",
                part,
                labels.name,
                part,
                sorted(labels.parts) or "none",
            )
            continue
        targeted = {
            **common,
            "kinds": tuple(kinds),
            "coverage": coverage,
            "centre_on": tuple(labels.ids(labels.parts[part])),
        }
        conditions.append(Condition(f"occluded_target/{part}", FixedOcclusion(**targeted)))
    real = spec.get("real") or {}
    if real.get("root"):
        root = Path(real["root"])
        if root.is_dir():
            classes = tuple(real.get("classes", ("eye_g", "hat")))
            occluders = RealOccluders(root, classes, real.get("cache_dir"), real.get("composed_dir"))
            label_as = tuple((kind, labels.names.index(kind)) for kind in classes if kind in labels.names)
            conditions.append(Condition("occluded_real", RealOcclusion(occluders, seed, face, label_as)))
        else:
            log.warning("data.occluded_test.real.root=%s is absent: no real-occluder condition in this test", root)
    realign = spec.get("realign")
    if realign and realign not in REALIGN:
        raise ValueError(f"data.occluded_test.realign={realign}: expected one of {', '.join(REALIGN)}, or null")
    if realign and eval_resolution != "original":
        log.warning("no realigned condition when scoring crops (data.eval_resolution=crop): nothing to realign")
    elif realign:
        error = float(spec.get("landmark_error", 0.1))
        conditions.append(Condition("occluded_realigned", primary, realign, error, seed))
    return conditions, aliases


def realigned_matrix(
    condition: Condition,
    index: int,
    image: np.ndarray,
    occluder: np.ndarray,
    landmarks: np.ndarray | None,
    settings: CropSettings,
    finder: Any = None,
) -> tuple[np.ndarray, str]:
    """Photo -> crop for an occluded photo, as the condition's `realign` finds the face; and how it was found.

    `perturbed` (data with landmarks and aligned crops): each of the 5 alignment points that the occluder hides
    moves by a Gaussian error of `landmark_error` inter-ocular distances per axis, as landmark detectors err on
    hidden points (visible points keep their place). `detector`: YuNet's points on the occluded photo (`finder`, a
    facseg.data.detect.FaceFinder), the letterbox when it finds no face.
    """
    if condition.realign == "perturbed" and settings.align and landmarks is not None:
        points = landmarks[list(ALIGNMENT_POINTS)].astype(np.float64)
        height, width = occluder.shape
        cells = np.round(points).astype(int)
        inside = (cells[:, 0] >= 0) & (cells[:, 0] < width) & (cells[:, 1] >= 0) & (cells[:, 1] < height)
        hidden = np.zeros(len(points), bool)
        hidden[inside] = occluder[cells[inside, 1], cells[inside, 0]]
        inter_ocular = np.linalg.norm(points[0] - points[1])
        rng = np.random.default_rng([condition.seed, index, 2])
        points[hidden] += rng.normal(0, condition.landmark_error * inter_ocular, (int(hidden.sum()), 2))
        return similarity_matrix(points, template_points(settings.image_size, settings.margin)), "perturbed"
    face = finder(image)[0]
    return face.matrix, face.source
