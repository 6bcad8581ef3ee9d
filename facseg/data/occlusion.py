"""Occluders: objects pasted over a face, sized to cover an exact fraction of it, from a seeded generator.

Kinds: `ellipse` and `polygon` (cups, phones, stickers), `hand` (a palm and five fingers, in skin tones), `bar`
(a glasses' frame, a microphone, a strap). Each is filled with a solid colour or a texture (noise or stripes).

Ground truth under an occluder is background. LaPa labels what is visible: a hand over a mouth is not "lips" in its
annotations, so a parser is scored on not hallucinating parts it cannot see, and a model that paints a mouth
through a hand loses both precision on lips and accuracy inside the occluder (`occluded/inside/pixel_acc`).

`coverage` is the fraction of the face's pixels hidden: the class set's `face` classes (LaPa: skin, brows, eyes,
nose, lips, mouth), not hair or background, so that a hairstyle does not change how much of the face an occluder
hides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facseg.data.labels import BACKGROUND

KINDS = ("ellipse", "polygon", "hand", "bar")
LAPA_FACE = (1, 2, 3, 4, 5, 6, 7, 8, 9)  # LaPa's face classes, the default (a FaceDataModule passes its class set's)
SKIN_TONES = np.array([(255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36)], float)


def face_mask(label: np.ndarray, face: Sequence[int] = LAPA_FACE) -> np.ndarray:
    return np.isin(label, face)


def _capsule(x0: float, y0: float, x1: float, y1: float, radius: float) -> np.ndarray:
    """A rounded segment as a polygon (points in the unit frame)."""
    angle = np.arctan2(y1 - y0, x1 - x0)
    half = np.linspace(-np.pi / 2, np.pi / 2, 8)
    end = np.stack([x1 + radius * np.cos(angle + half), y1 + radius * np.sin(angle + half)], 1)
    start = np.stack([x0 + radius * np.cos(angle + np.pi + half), y0 + radius * np.sin(angle + np.pi + half)], 1)
    return np.concatenate([end, start])


def _outline(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """The occluder's polygons in a unit frame (about 1 across, centred on 0), before scaling and rotation."""
    if kind == "ellipse":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        ratio = rng.uniform(0.5, 1.0)
        return [np.stack([0.5 * np.cos(t), 0.5 * ratio * np.sin(t)], 1)]
    if kind == "polygon":
        t = np.sort(rng.uniform(0, 2 * np.pi, 7))
        r = rng.uniform(0.25, 0.5, 7)
        return [np.stack([r * np.cos(t), r * np.sin(t)], 1)]
    if kind == "hand":  # a palm and four fingers pointing up, a thumb to one side
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        palm = np.stack([0.22 * np.cos(t), 0.25 * np.sin(t) + 0.1], 1)
        fingers = [
            _capsule(x, -0.05, x + rng.uniform(-0.03, 0.03), -0.05 - length, 0.05)
            for x, length in zip((-0.15, -0.05, 0.05, 0.15), rng.uniform(0.25, 0.4, 4))
        ]
        side = rng.choice([-1.0, 1.0])
        thumb = _capsule(0.15 * side, 0.15, 0.35 * side, -0.02, 0.055)
        return [palm, *fingers, thumb]
    if kind == "bar":
        thickness = rng.uniform(0.05, 0.12)
        return [_capsule(-0.5, 0.0, 0.5, 0.0, thickness)]
    raise ValueError(f"occluder kind {kind!r}: expected one of {', '.join(KINDS)}")


def _fill(kind: str, shape: tuple[int, int], rng: np.random.Generator, textured: bool) -> np.ndarray:
    """H x W x 3 float pixels to paste: a solid colour, noise or stripes; hands in a skin tone."""
    colour = SKIN_TONES[rng.integers(len(SKIN_TONES))] if kind == "hand" else rng.uniform(0, 255, 3)
    fill = np.broadcast_to(colour, (*shape, 3)).astype(np.float32)
    if not textured:
        return fill
    if rng.random() < 0.5:
        return np.clip(fill + rng.normal(0, rng.uniform(20, 60), (*shape, 3)), 0, 255)
    period, angle = rng.uniform(4, 16), rng.uniform(0, np.pi)
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    stripes = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period) > 0
    other = rng.uniform(0, 255, 3)
    return np.where(stripes[..., None], fill, other).astype(np.float32)


@dataclass(frozen=True)
class Occlusion:
    mask: np.ndarray  # H x W bool: the occluder's pixels
    fill: np.ndarray  # H x W x 3 float: what it looks like
    kind: str
    coverage: float  # the fraction of face pixels it hides, as achieved

    def apply(self, image: np.ndarray, label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The occluded image, and the label with the occluder's pixels set to background."""
        image = image.copy()
        image[self.mask] = self.fill[self.mask].astype(image.dtype)
        if label is None:
            return image, None
        label = label.copy()
        label[self.mask] = BACKGROUND
        return image, label


def draw_occluder(
    label: np.ndarray,
    coverage: float,
    rng: np.random.Generator,
    kinds: Sequence[str] = KINDS,
    textured: float = 0.5,
    face: Sequence[int] = LAPA_FACE,
) -> Occlusion:
    """An occluder hiding `coverage` of the face (the `face` class ids) in `label`, to the pixel, at a random place,
    angle and kind.

    The outline's centre is drawn inside the face; its scale is found by bisection, as the hidden fraction grows
    with the scale, and the last pixels come from the rim of the next larger scale. `textured`: the probability
    of a textured rather than a solid fill.
    """
    if not 0 <= coverage <= 1:
        raise ValueError(f"occluder coverage={coverage}: expected a fraction of the face in [0, 1]")
    face = face_mask(label, face)
    ys, xs = np.nonzero(face)
    if len(xs) == 0:  # no face labelled: occlude the middle of the image instead
        ys, xs = np.mgrid[: label.shape[0], : label.shape[1]].reshape(2, -1)
        face = np.ones(label.shape, bool)
    kind = str(kinds[rng.integers(len(kinds))])
    polygons = _outline(kind, rng)
    pick = rng.integers(len(xs))
    centre = np.array([xs[pick], ys[pick]], float)
    angle = rng.uniform(-np.pi / 4, np.pi / 4) + (np.pi / 2 if kind == "bar" and rng.random() < 0.3 else 0.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    face_size = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    textured_fill = rng.random() < textured
    fill = _fill(kind, label.shape, rng, textured_fill)

    target = round(coverage * face.sum())
    canvas = np.zeros(label.shape, np.uint8)

    def render(scale: float) -> np.ndarray:
        canvas[:] = 0
        points = [np.round(centre + scale * face_size * p @ rotation.T).astype(np.int32) for p in polygons]
        cv2.fillPoly(canvas, points, 1)
        return canvas.astype(bool)

    def hidden(scale: float) -> int:
        return int(np.count_nonzero(render(scale) & face))

    low, high = 0.0, 1.0
    while hidden(high) < target and high < 64:
        low, high = high, 2 * high
    for _ in range(30):  # to well under a pixel of scale
        middle = (low + high) / 2
        low, high = (middle, high) if hidden(middle) < target else (low, middle)
    # A straight edge gains a whole row of pixels at once: complete the count with the face pixels of the next
    # ring nearest the centre, so that the occluder hides the asked fraction to the pixel.
    mask = render(low) if target > 0 else np.zeros(label.shape, bool)
    ring_ys, ring_xs = np.nonzero(render(high) & ~mask & face)
    need = target - int(np.count_nonzero(mask & face))
    if need > 0:
        nearest = np.argsort(np.hypot(ring_xs - centre[0], ring_ys - centre[1]), kind="stable")[:need]
        mask[ring_ys[nearest], ring_xs[nearest]] = True
    achieved = np.count_nonzero(mask & face) / max(1, face.sum())
    return Occlusion(mask=mask, fill=fill, kind=kind, coverage=float(achieved))


@dataclass(frozen=True)
class FixedOcclusion:
    """The occluded test split: image `index` gets the same occluder in every run, every model, every process.

    Seeded by (seed, index) alone and independent of the run's seed, so that models trained with different seeds
    are scored on identical occluded photos.
    """

    coverage: float = 0.2
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    textured: float = 0.5
    face: tuple[int, ...] = LAPA_FACE

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"occluder kinds {list(self.kinds)}: expected some of {', '.join(KINDS)}")

    def __call__(self, index: int, label: np.ndarray) -> Occlusion:
        rng = np.random.default_rng([self.seed, index])
        return draw_occluder(label, self.coverage, rng, self.kinds, self.textured, self.face)
