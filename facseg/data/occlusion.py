"""Occluders: objects pasted over a face, from a seeded generator, labelled background underneath.

Drawn (`draw_occluder`): `ellipse` and `polygon` (cups, phones, stickers), `hand` (a palm and five fingers, in skin
tones), `bar` (a glasses' frame, a microphone, a strap), each filled with a solid colour or a texture (noise or
stripes), sized to hide an exact fraction of the face, at a random place or centred on a part (the eyes, the
mouth, the nose). Real eyeglasses and hats: facseg.data.real_occluders.

Ground truth under an occluder is its own class where the class set has one (CelebAMask-HQ's eye_g and hat, for the
real objects: the dataset's own convention), else background. That drawn occluders and LaPa's are background is an
assumption: LaPa's 11 classes have no occluder class and its paper (Liu et al., AAAI 2020) does not say how an
occluding object is labelled; a hand over a mouth is then not "lips", so a parser is scored on not hallucinating
parts it cannot see, and a model that paints a mouth through a hand loses both precision on lips and accuracy
inside the occluder (`occluded/inside/pixel_acc`).

`coverage` is the fraction of the face's pixels hidden: the class set's `face` classes (LaPa: skin, brows, eyes,
nose, lips, mouth), not hair or background, so that a hairstyle does not change how much of the face an occluder
hides.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facseg.data.labels import BACKGROUND

log = logging.getLogger(__name__)

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


def _fill(
    kind: str, shape: tuple[int, int], rng: np.random.Generator, textured: bool, where: np.ndarray | None = None
) -> np.ndarray:
    """H x W x 3 float pixels to paste: a solid colour, noise or stripes; hands in a skin tone. `where` (H x W bool):
    only those pixels' values, n x 3 in row-major order, the same numbers as the whole fill's there for less work:
    noise is drawn up to the last pixel asked for (the stream's first values are the same), stripes are worked
    out at those pixels only."""
    colour = SKIN_TONES[rng.integers(len(SKIN_TONES))] if kind == "hand" else rng.uniform(0, 255, 3)
    pixels = shape if where is None else (np.count_nonzero(where),)
    fill = np.broadcast_to(colour, (*pixels, 3)).astype(np.float32)
    if not textured:
        return fill
    if rng.random() < 0.5:
        spread = rng.uniform(20, 60)
        if where is None:
            return np.clip(fill + rng.normal(0, spread, (*shape, 3)), 0, 255)
        at = np.flatnonzero(where)
        noise = rng.normal(0, spread, (at[-1] + 1 if len(at) else 0, 3))
        return np.clip(fill + noise[at], 0, 255)
    period, angle = rng.uniform(4, 16), rng.uniform(0, np.pi)
    ys, xs = np.mgrid[: shape[0], : shape[1]] if where is None else np.nonzero(where)
    stripes = np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period) > 0
    other = rng.uniform(0, 255, 3)
    return np.where(stripes[..., None], fill, other).astype(np.float32)


def _painter(kind: str, shape: tuple[int, int], rng: np.random.Generator, textured: bool, now: bool) -> Paint:
    """The occluder's Paint. `now`: drawn from `rng` at once, whole (a training image's: the caller's generator
    goes on from there); else from a copy of `rng` as it is, when asked and as often as asked."""
    if now:
        whole = _fill(kind, shape, rng, textured)
        return lambda where=None: whole if where is None else whole[where]
    state = copy.deepcopy(rng)
    return lambda where=None: _fill(kind, shape, copy.deepcopy(state), textured, where)


# What an occluder looks like: paint() gives H x W x 3 float pixels, paint(where) those at the H x W bool `where`
# only (n x 3, row-major), worked out when asked.
Paint = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Occlusion:
    mask: np.ndarray  # H x W bool: the occluder's pixels
    paint: Paint  # what it looks like (`fill`: the whole of it)
    kind: str
    coverage: float  # the fraction of face pixels it hides, as achieved
    alpha: np.ndarray | None = None  # H x W float opacity (feathered edges); None: opaque on `mask`
    label_as: int = BACKGROUND  # the class its pixels take: a real object's own where the class set has it

    @property
    def fill(self) -> np.ndarray:
        return self.paint()

    def apply(self, image: np.ndarray, label: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The occluded image, and the label with the occluder's pixels set to its class (`label_as`)."""
        if self.alpha is None:  # opaque: painted on its own pixels only
            image = image.copy()
            image[self.mask] = self.paint(self.mask).astype(image.dtype)
        else:
            alpha = self.alpha[..., None]
            image = np.clip(image * (1 - alpha) + self.fill * alpha, 0, 255).round().astype(image.dtype)
        if label is None:
            return image, None
        label = label.copy()
        label[self.mask] = self.label_as
        return image, label


def _principal_angle(ys: np.ndarray, xs: np.ndarray) -> float:
    """The angle of a pixel set's long axis (of both eyes together: the eye line), in [-pi/2, pi/2)."""
    if len(xs) < 2:
        return 0.0
    xs, ys = xs - xs.mean(), ys - ys.mean()
    angle = 0.5 * np.arctan2(2 * (xs * ys).mean(), (xs * xs).mean() - (ys * ys).mean())
    return float(angle)


def _nth_pixel(mask: np.ndarray, n: int) -> np.ndarray:
    """(x, y) of the n-th True pixel of `mask` in row-major order, without listing them all."""
    before = np.cumsum(np.count_nonzero(mask, 1))
    row = int(np.searchsorted(before, n, side="right"))
    column = np.flatnonzero(mask[row])[n - (before[row - 1] if row else 0)]
    return np.array([column, row], float)


def draw_occluder(
    label: np.ndarray,
    coverage: float,
    rng: np.random.Generator,
    kinds: Sequence[str] = KINDS,
    textured: float = 0.5,
    face: Sequence[int] = LAPA_FACE,
    centre_on: Sequence[int] = (),
    paint_later: bool = False,
) -> Occlusion:
    """An occluder hiding `coverage` of the face (the `face` class ids) in `label`, to the pixel.

    At a random place and angle; with `centre_on` (class ids, e.g. both eyes), centred on those classes' pixels and
    turned along their long axis (a bar then lies across both eyes, a hand's fingers point up over the mouth), a
    random place if the image has none of them. Its scale is found by bisection, as the hidden fraction grows with
    the scale, and the last pixels come from the rim of the next larger scale. `textured`: the probability of a
    textured rather than a solid fill. `paint_later`: the fill is drawn when asked for, from `rng` as it is now (rng
    may serve nothing else after: a test condition's own), so a mask alone costs no photo-sized fill.
    """
    if not 0 <= coverage <= 1:
        raise ValueError(f"occluder coverage={coverage}: expected a fraction of the face in [0, 1]")
    face = face_mask(label, face)
    if not face.any():  # no face labelled: occlude the middle of the image instead
        face = np.ones(label.shape, bool)
    rows, columns = np.flatnonzero(face.any(1)), np.flatnonzero(face.any(0))
    kind = str(kinds[rng.integers(len(kinds))])
    polygons = _outline(kind, rng)
    target_ys, target_xs = np.nonzero(np.isin(label, centre_on)) if len(centre_on) else ((), ())
    if len(target_xs):
        centre = np.array([np.mean(target_xs), np.mean(target_ys)])
        angle = _principal_angle(target_ys, target_xs) + rng.uniform(-np.pi / 18, np.pi / 18)
    else:
        centre = _nth_pixel(face, rng.integers(np.count_nonzero(face)))
        angle = rng.uniform(-np.pi / 4, np.pi / 4) + (np.pi / 2 if kind == "bar" and rng.random() < 0.3 else 0.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    face_size = max(columns[-1] - columns[0], rows[-1] - rows[0]) + 1
    textured_fill = rng.random() < textured
    paint = _painter(kind, label.shape, rng, textured_fill, now=not paint_later)  # rng's last draw, or a copy's

    target = round(coverage * face.sum())
    height, width = label.shape

    face_bytes = face.view(np.uint8)  # 0/1, as the canvas: their & needs no conversion

    outline = np.concatenate(polygons)  # the polygons' points in one array: one product per scale, not one each
    ends = np.cumsum([len(p) for p in polygons])[:-1]

    def render(scale: float) -> tuple[np.ndarray, tuple[slice, slice]]:
        """The outline at this scale, drawn in its own bounding window only (0/1 bytes; a photo's other pixels
        stay 0)."""
        points = centre + scale * face_size * outline @ rotation.T
        low = np.floor(points.min(0)).astype(int).clip(0, [width - 1, height - 1])
        high = np.ceil(points.max(0)).astype(int).clip(0, [width - 1, height - 1]) + 1
        window = (slice(low[1], high[1]), slice(low[0], high[0]))
        canvas = np.zeros((high[1] - low[1], high[0] - low[0]), np.uint8)
        for p in np.split(np.round(points - low).astype(np.int32), ends):  # one by one: their union (fillPoly of
            cv2.fillPoly(canvas, [p], 1)  # several polygons leaves holes where they overlap)
        return canvas, window

    def hidden(scale: float) -> int:
        drawn, window = render(scale)
        return int(np.count_nonzero(drawn & face_bytes[window]))

    def full(scale: float) -> np.ndarray:
        drawn, window = render(scale)
        mask = np.zeros(label.shape, bool)
        mask[window] = drawn
        return mask

    low, high = 0.0, 1.0
    while hidden(high) < target and high < 64:
        low, high = high, 2 * high
    for _ in range(30):  # to well under a pixel of scale
        middle = (low + high) / 2
        low, high = (middle, high) if hidden(middle) < target else (low, middle)
    # A straight edge gains a whole row of pixels at once: complete the count with the face pixels of the next
    # ring nearest the centre, so that the occluder hides the asked fraction to the pixel.
    mask = full(low) if target > 0 else np.zeros(label.shape, bool)
    drawn, window = render(high)  # the rim, in the larger outline's window (row-major there as in the photo)
    ring_ys, ring_xs = np.nonzero(drawn.view(bool) & ~mask[window] & face[window])
    ring_ys, ring_xs = ring_ys + window[0].start, ring_xs + window[1].start
    need = target - int(np.count_nonzero(mask & face))
    if need > 0:
        nearest = np.argsort(np.hypot(ring_xs - centre[0], ring_ys - centre[1]), kind="stable")[:need]
        mask[ring_ys[nearest], ring_xs[nearest]] = True
    achieved = np.count_nonzero(mask & face) / max(1, face.sum())
    return Occlusion(mask=mask, paint=paint, kind=kind, coverage=float(achieved))


@dataclass(frozen=True)
class FixedOcclusion:
    """An occluded test condition: image `index` gets the same occluder in every run, every model, every process.

    Seeded by (seed, index) alone and independent of the run's seed, so that models trained with different seeds
    are scored on identical occluded photos. `centre_on`: class ids to centre the occluder on (targeted occlusion).
    """

    coverage: float = 0.2
    seed: int = 0
    kinds: tuple[str, ...] = KINDS
    textured: float = 0.5
    face: tuple[int, ...] = LAPA_FACE
    centre_on: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"occluder kinds {list(self.kinds)}: expected some of {', '.join(KINDS)}")

    def __call__(self, index: int, label: np.ndarray, image: np.ndarray | None = None) -> Occlusion:
        rng = np.random.default_rng([self.seed, index])  # its own: the fill is painted only if applied
        return draw_occluder(label, self.coverage, rng, self.kinds, self.textured, self.face, self.centre_on, True)
