"""Procedural faces in LaPa's exact layout and formats: the embedded default dataset.

Each face is built from LaPa's 106 landmarks in a canonical frame (unit = half the face width, origin between the
eyes), posed by a yaw and a similarity transform, and painted part by part; the label map is painted with the same
polygons in the same order, so labels, landmarks and pixels agree. Pose, scale, skin tone, hair style and colour,
mouth opening, lighting, background clutter, noise, blur and JPEG quality vary per image.

    python -m facseg.data.synthetic --out data/synthetic --train 800 --val 100 --test 100 --size 256
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from facseg.data.formats import SPLITS, write_landmarks

log = logging.getLogger(__name__)

MARKER = "synthetic.json"
HINT = "data=synthetic writes its own under paths.data_dir; real datasets go in paths.lapa, paths.celebamask"
GENERATOR_VERSION = 2

# LaPa's class ids (conf/data/labels/lapa.yaml): the generator draws LaPa's labels.
BACKGROUND, SKIN, L_BROW, R_BROW, L_EYE, R_EYE, NOSE, U_LIP, MOUTH, L_LIP, HAIR = range(11)


@dataclass(frozen=True)
class SyntheticSpec:
    """What a synthetic set is made of; two sets with equal specs are identical."""

    train: int = 800
    val: int = 100
    test: int = 100
    size: int = 256
    max_size: int | None = None  # when set, each side is drawn from [size, max_size]: LaPa's photos vary
    seed: int = 0

    def counts(self) -> dict[str, int]:
        return {"train": self.train, "val": self.val, "test": self.test}


# ---------------------------------------------------------------- geometry in the canonical face frame


def _eye(cx: float, cy: float, hw: float, hh: float) -> tuple[np.ndarray, np.ndarray]:
    """An almond eye: dense outline and LaPa's 9 points (corner, 3 upper, corner, 3 lower back, centre)."""
    u = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    outline = np.stack([cx - hw * np.cos(u), cy - np.where(u < np.pi, hh, 0.8 * hh) * np.sin(u)], 1)
    k = np.arange(8) * np.pi / 4
    points = np.stack([cx - hw * np.cos(k), cy - np.where(k < np.pi, hh, 0.8 * hh) * np.sin(k)], 1)
    return outline, np.vstack([points, [[cx, cy]]])


def _eyebrow(cx: float, cy: float, hw: float, thick: float, arch: float, outer_left: bool):
    """An arched, tapered brow: dense outline and LaPa's 9 points (5 upper left to right, 4 lower back)."""

    def edges(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = cx - hw + 2 * hw * f
        centre = cy - arch * np.sin(np.pi * f)
        taper = 0.45 + 0.55 * (f if outer_left else 1 - f)  # thin at the outer end
        return x, centre - thick * taper / 2, centre + thick * taper / 2

    f = np.linspace(0, 1, 24)
    x, top, bottom = edges(f)
    outline = np.vstack([np.stack([x, top], 1), np.stack([x, bottom], 1)[::-1]])
    x5, top5, _ = edges(np.linspace(0, 1, 5))
    x4, _, bottom4 = edges(np.array([0.875, 0.625, 0.375, 0.125]))
    return outline, np.vstack([np.stack([x5, top5], 1), np.stack([x4, bottom4], 1)])


def _nose(tip_dx: float, width: float, length: float) -> tuple[np.ndarray, np.ndarray]:
    """Nose: 4 bridge points down to the tip (54), then 11 outline points from upper left around to upper right."""
    bridge = np.stack([np.linspace(0, tip_dx, 4), np.linspace(0.08, length, 4)], 1)
    w = width
    side = np.array(
        [[-0.08, 0.1], [-0.6 * w, 0.75 * length], [-w, length], [-0.75 * w, 1.12 * length], [-0.35 * w, 1.18 * length]]
    )
    side[:, 0] += tip_dx * np.linspace(0.2, 1, 5)
    centre = np.array([[tip_dx, 1.2 * length]])
    mirrored = side[::-1].copy()
    mirrored[:, 0] = 2 * tip_dx * np.linspace(1, 0.2, 5) - mirrored[:, 0]
    outline = np.vstack([side, centre, mirrored])
    return outline, np.vstack([bridge, outline])


def _mouth(cx: float, cy: float, hw: float, upper: float, lower: float, opening: float):
    """Lips and inner mouth: polygons of the three parts and LaPa's 20 points (12 outer, 8 inner)."""
    f = np.linspace(0, 1, 33)
    x = cx - hw + 2 * hw * f
    s = np.sin(np.pi * f)
    bow = 1 - 0.35 * np.exp(-(((f - 0.5) / 0.08) ** 2))  # the dip of the cupid's bow
    outer_up = np.stack([x, cy - opening / 2 * s - upper * np.sqrt(s) * bow], 1)
    outer_low = np.stack([x, cy + opening / 2 * s + lower * s**0.7], 1)
    xi = cx - 0.9 * hw + 1.8 * hw * f
    inner_up = np.stack([xi, cy - opening / 2 * s], 1)
    inner_low = np.stack([xi, cy + opening / 2 * s], 1)
    left, right = outer_up[0], outer_up[-1]
    polygons = {
        U_LIP: np.vstack([outer_up, inner_up[::-1]]),
        L_LIP: np.vstack([[left], inner_low, [right], outer_low[::-1]]),
        MOUTH: np.vstack([inner_up, inner_low[::-1]]),
    }
    at = lambda curve, fs: curve[np.round(np.asarray(fs) * 32).astype(int)]  # noqa: E731
    points = np.vstack(
        [
            [left],
            at(outer_up, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]),
            [right],
            at(outer_low, [5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]),
            at(inner_up, [0, 0.25, 0.5, 0.75, 1]),
            at(inner_low, [0.75, 0.5, 0.25]),
        ]
    )
    return polygons, points


def _face_outline(jaw: float, chin: float, forehead: float) -> tuple[np.ndarray, np.ndarray]:
    """Contour points 0..32 (left temple, chin, right temple) and the skin outline closed over the forehead."""
    t = np.linspace(0, np.pi, 33)
    c = np.cos(t)
    contour = np.stack([-np.sign(c) * np.abs(c) ** jaw, chin * np.sin(t)], 1)
    top = np.linspace(0, np.pi, 24)[1:-1]
    forehead_arc = np.stack([np.cos(top), -forehead * np.sin(top)], 1)
    return contour, np.vstack([contour, forehead_arc])


# ---------------------------------------------------------------- one face


def _random_colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, 3)


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    dark, light = np.array([70, 45, 35]), np.array([245, 205, 180])  # RGB
    return dark + rng.uniform(0, 1) * (light - dark) + rng.normal(0, 8, 3)


def _hair_colour(rng: np.random.Generator) -> np.ndarray:
    palette = np.array([[20, 15, 10], [60, 40, 25], [110, 75, 40], [190, 150, 90], [150, 60, 30], [170, 170, 170]])
    return palette[rng.integers(len(palette))] + rng.normal(0, 10, 3)


class _Canvas:
    """Paints the RGB image and the label map together, so a part's pixels and its label never disagree."""

    def __init__(self, image: np.ndarray, to_pixels) -> None:
        self.image = image
        self.label = np.zeros(image.shape[:2], np.uint8)
        self.to_pixels = to_pixels

    def fill(self, polygon: np.ndarray, colour, label: int) -> None:
        pts = np.round(self.to_pixels(polygon) * 16).astype(np.int32)  # 4 fractional bits: smooth outlines
        cv2.fillPoly(self.image, [pts], tuple(float(c) for c in colour), cv2.LINE_AA, shift=4)
        cv2.fillPoly(self.label, [pts], label, cv2.LINE_8, shift=4)

    def shade(self, polygon: np.ndarray, colour, alpha: float, within: int) -> None:
        """Blend a colour into the part of a region already labelled `within` (irises, shadows); labels stay."""
        weight = np.zeros(self.label.shape, np.float32)
        pts = np.round(self.to_pixels(polygon) * 16).astype(np.int32)
        cv2.fillPoly(weight, [pts], alpha, cv2.LINE_AA, shift=4)
        weight = (weight * (self.label == within))[..., None]
        self.image[:] = self.image * (1 - weight) + np.asarray(colour, np.float32) * weight


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    size = min(height, width)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / size
    a, b = _random_colour(rng, 0, 255), _random_colour(rng, 0, 255)
    angle = rng.uniform(0, np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    image = (a * (1 - t[..., None]) + b * t[..., None]).astype(np.float32)
    for _ in range(rng.integers(0, 7)):  # clutter, sometimes skin- or hair-coloured to make the task honest
        colour = _skin_tone(rng) if rng.random() < 0.25 else _random_colour(rng, 0, 255)
        centre = rng.integers(0, [width, height])
        if rng.random() < 0.5:
            axes = rng.integers(size // 20, size // 4, 2)
            cv2.ellipse(
                image,
                tuple(int(c) for c in centre),
                tuple(int(a) for a in axes),
                float(rng.uniform(0, 180)),
                0,
                360,
                tuple(float(c) for c in colour),
                -1,
                cv2.LINE_AA,
            )
        else:
            corner = centre + rng.integers(-size // 4, size // 4, 2)
            cv2.rectangle(
                image, tuple(int(c) for c in centre), tuple(int(c) for c in corner), tuple(float(c) for c in colour), -1
            )
    return image


def render_face(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic face: (RGB uint8 HxWx3, label uint8 HxW, landmarks float 106x2 in pixels)."""
    size = min(height, width)
    # Pose: yaw turns the inner features on a sphere; roll, scale and shift form the similarity transform.
    yaw = rng.uniform(-0.35, 0.35)
    roll = rng.uniform(-0.35, 0.35)
    scale = size * rng.uniform(0.24, 0.34)  # pixels per canonical unit (half the face width)
    centre = np.array([width, height]) / 2 + size * rng.uniform(-0.07, 0.07, 2) + np.array([0.0, -0.25 * scale])
    rotation = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])

    def to_pixels(points: np.ndarray) -> np.ndarray:
        return points @ rotation.T * scale + centre

    def turned(points: np.ndarray, depth: float = 0.9) -> np.ndarray:
        out = points.copy()
        out[:, 0] = np.sin(np.arcsin(np.clip(points[:, 0] * depth, -1, 1)) + yaw) / depth
        return out

    canvas = _Canvas(_background(rng, height, width), to_pixels)
    skin = _skin_tone(rng)
    hair = _hair_colour(rng)

    # Face shape and the parts' geometry, all in canonical units.
    contour, skin_outline = _face_outline(
        jaw=rng.uniform(0.5, 0.9), chin=rng.uniform(1.5, 1.8), forehead=rng.uniform(1.1, 1.3)
    )
    eye_dx, eye_hw, eye_hh = rng.uniform(0.38, 0.45), rng.uniform(0.15, 0.2), rng.uniform(0.06, 0.09)
    brow_y, brow_hw = -rng.uniform(0.28, 0.38), rng.uniform(0.22, 0.28)
    brow_thick, brow_arch = rng.uniform(0.07, 0.12), rng.uniform(0.02, 0.08)
    eyes = [_eye(s * eye_dx, 0.0, eye_hw, eye_hh) for s in (-1, 1)]
    brows = [_eyebrow(s * (eye_dx - 0.02), brow_y, brow_hw, brow_thick, brow_arch, outer_left=s < 0) for s in (-1, 1)]
    nose_outline, nose_points = _nose(tip_dx=0.25 * yaw, width=rng.uniform(0.15, 0.22), length=rng.uniform(0.4, 0.52))
    mouth_y = rng.uniform(0.88, 1.05)
    opening = rng.uniform(0.05, 0.2) if rng.random() < 0.7 else 0.0
    lips, mouth_points = _mouth(
        0.0, mouth_y, rng.uniform(0.26, 0.36), rng.uniform(0.06, 0.1), rng.uniform(0.08, 0.13), opening
    )

    # Painter's order: hair behind the head, neck (LaPa labels it background), ears, face, fringe, then the parts.
    crown = np.array([[np.cos(a) * 1.18, -0.2 - np.sin(a) * 1.35] for a in np.linspace(0, np.pi, 40)])  # R to L
    if rng.random() < 0.9:
        length = rng.uniform(1.6, 2.6) if rng.random() < 0.45 else 0.3
        sides = np.array([[-1.25, length], [1.25, length]])
        canvas.fill(np.vstack([crown, sides]), hair, HAIR)
    neck = np.array([[-0.55, 0.8], [0.55, 0.8], [0.65, 3.5], [-0.65, 3.5]])
    canvas.fill(neck, skin * 0.85, BACKGROUND)
    if rng.random() < 0.6:  # clothes
        canvas.fill(np.array([[-2.5, 2.1], [2.5, 2.1], [3, 5], [-3, 5]]), _random_colour(rng, 0, 255), BACKGROUND)
    for s in (-1, 1):
        ear = np.stack(
            [
                s * (0.98 + 0.12 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 16))),
                0.2 + 0.28 * np.sin(np.linspace(-np.pi / 2, np.pi / 2, 16)),
            ],
            1,
        )
        canvas.fill(np.vstack([ear, [[s * 0.9, 0.5], [s * 0.9, -0.1]]]), skin * 0.95, SKIN)
    canvas.fill(skin_outline, skin, SKIN)
    canvas.shade(
        np.vstack([skin_outline[:17], [[0.0, 0.3]]]) if yaw > 0 else np.vstack([skin_outline[16:33], [[0.0, 0.3]]]),
        skin * 0.6,
        abs(yaw) * 0.5,
        within=SKIN,
    )  # the side turned away is darker
    if rng.random() < 0.85:  # fringe: hair over the forehead down to a wavy hairline
        hairline = rng.uniform(0.5, 0.85)
        xs = np.linspace(1.02, -1.02, 30)
        wave = hairline + 0.08 * np.sin(xs * rng.uniform(3, 9) + rng.uniform(0, 6))
        fringe = np.vstack([np.stack([-xs, -wave], 1), crown])
        canvas.fill(fringe, hair, HAIR)

    brow_colour = hair * 0.7 + rng.uniform(0, 30)
    for (outline, _), label in zip(brows, (L_BROW, R_BROW)):
        canvas.fill(turned(outline), brow_colour, label)
    sclera = np.full(3, rng.uniform(200, 250))
    iris = _hair_colour(rng) * rng.uniform(0.5, 1.2)
    for (outline, points), label in zip(eyes, (L_EYE, R_EYE)):
        canvas.fill(turned(outline), sclera, label)
        c = turned(points[8:9])[0]
        r = eye_hh * 1.1
        circle = c + r * np.stack([np.cos(np.linspace(0, 2 * np.pi, 24)), np.sin(np.linspace(0, 2 * np.pi, 24))], 1)
        canvas.shade(circle, iris, 0.9, within=label)
        canvas.shade(c + 0.35 * (circle - c), np.zeros(3), 0.9, within=label)  # pupil
    canvas.fill(turned(nose_outline), skin * 0.92, NOSE)
    for nostril in ([1, 2, 3, 4, 5], [5, 6, 7, 8, 9]):
        canvas.shade(turned(nose_outline[nostril]), skin * 0.55, 0.5, within=NOSE)
    lip_colour = np.array([rng.uniform(150, 220), rng.uniform(50, 110), rng.uniform(60, 120)])
    canvas.fill(turned(lips[MOUTH]), np.array([60, 15, 20]) + rng.uniform(0, 30), MOUTH)
    canvas.fill(turned(lips[U_LIP]), lip_colour * 0.85, U_LIP)
    canvas.fill(turned(lips[L_LIP]), lip_colour, L_LIP)

    landmarks = np.vstack(
        [
            contour,
            turned(brows[0][1]),
            turned(brows[1][1]),
            turned(nose_points),
            turned(eyes[0][1]),
            turned(eyes[1][1]),
            turned(mouth_points),
            turned(eyes[0][1][8:9]),
            turned(eyes[1][1][8:9]),
        ]
    )

    # Light, sensor noise, blur.
    image = canvas.image
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    light = rng.uniform(0.7, 1.0) + rng.uniform(0, 0.4) * (np.cos(angle) * xx + np.sin(angle) * yy)
    image = image * light[..., None] + rng.normal(0, rng.uniform(2, 8), image.shape)
    image = np.clip(image, 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.2))
    return image, canvas.label, to_pixels(landmarks)


# ---------------------------------------------------------------- the dataset on disk


def generate(out: Path, spec: SyntheticSpec) -> None:
    """Write a synthetic set in LaPa's layout to `out`, atomically: `out` appears complete or not at all."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; remove it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for split_index, split in enumerate(SPLITS):
            folders = [tmp / split / sub for sub in ("images", "labels", "landmarks")]
            for folder in folders:
                folder.mkdir(parents=True)
            for i in range(spec.counts()[split]):
                # One generator per image: any image can be re-made alone, whatever the split sizes.
                rng = np.random.default_rng([spec.seed, split_index, i])
                height, width = rng.integers(spec.size, spec.max_size + 1, 2) if spec.max_size else (spec.size,) * 2
                image, label, landmarks = render_face(rng, int(height), int(width))
                name = f"{split}_{i:05d}"
                quality = int(rng.integers(75, 96))
                cv2.imwrite(
                    str(folders[0] / f"{name}.jpg"),
                    cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, quality],
                )
                cv2.imwrite(str(folders[1] / f"{name}.png"), label)
                write_landmarks(folders[2] / f"{name}.txt", landmarks)
        marker = {"generator_version": GENERATOR_VERSION, **asdict(spec)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def ensure_synthetic(root: Path, spec: SyntheticSpec) -> Path:
    """Generate the set at `root` on first use; reuse it when its marker matches `spec`, refuse it otherwise."""
    root = Path(root)
    marker = root / MARKER
    expected = {"generator_version": GENERATOR_VERSION, **asdict(spec)}
    if not root.exists():
        log.info("Generating synthetic LaPa-format data %s at %s", expected, root)
        try:
            generate(root, spec)
        except FileExistsError:  # another process finished it first
            pass
    if not marker.is_file():
        raise FileNotFoundError(f"data.root={root} has no {MARKER}: no synthetic set (a real dataset? {HINT})")
    found = json.loads(marker.read_text())
    if found != expected:
        raise ValueError(f"{root} holds a synthetic set made with {found}, not {expected}: remove it ({HINT})")
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = SyntheticSpec()
    parser.add_argument("--out", type=Path, required=True, help="folder to create (must not exist)")
    for split in SPLITS:
        parser.add_argument(f"--{split}", type=int, default=getattr(defaults, split), help=f"{split} images")
    parser.add_argument("--size", type=int, default=defaults.size, help="image side in pixels")
    parser.add_argument("--max-size", type=int, default=None, help="draw each side from [size, max-size]")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = SyntheticSpec(
        train=args.train, val=args.val, test=args.test, size=args.size, max_size=args.max_size, seed=args.seed
    )
    generate(args.out, spec)
    log.info("Wrote %s images to %s", spec.counts(), args.out)


if __name__ == "__main__":
    main()
