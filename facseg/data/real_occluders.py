"""Real occluders: eyeglasses and hats cut out of CelebAMask-HQ training photos with their exact masks, pasted with
feathered edges and the face's brightness (`RealOcclusion`); an occluder family that training never draws. Their
pixels take their own class where the class set has one (eye_g, hat), else background (facseg.data.occlusion)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from facseg.data.labels import BACKGROUND, LabelMap
from facseg.data.layouts import open_layout
from facseg.data.occlusion import LAPA_FACE, Occlusion, face_mask
from facseg.runtime.atomic import write_npz

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cutout:
    """One real occluding object: its pixels and exact mask, and where the face it was worn on lay (its own
    frame: the bounding box of the object)."""

    rgb: np.ndarray  # h x w x 3 uint8
    mask: np.ndarray  # h x w bool
    face_centre: np.ndarray  # (x, y) of the source face's pixels, in the cut-out's frame
    face_width: float  # the source face's width (its face classes' extent), in pixels
    luminance: float  # the source face's mean luminance, 0-255
    kind: str  # the class it was labelled as (eye_g, hat)
    source: str  # the training photo it comes from


def _luminance(image: np.ndarray, where: np.ndarray) -> float:
    return float((image[where].astype(np.float64) @ [0.299, 0.587, 0.114]).mean()) if where.any() else 128.0


class RealOccluders:
    """Eyeglasses and hats (`classes`) cut out of the training split of a CelebAMask-HQ copy at `root`, never its
    other splits. Built once and cached in `cache_dir` (a file named after the source's training photos), so that
    every run, process and worker reads the same cut-outs in the same order."""

    def __init__(
        self,
        root: Path | str,
        classes: Sequence[str] = ("eye_g", "hat"),
        cache_dir: Path | str | None = None,
        composed_dir: Path | str | None = None,
    ) -> None:
        self.labels = LabelMap.named("celebamask")
        unknown = [c for c in classes if c not in self.labels.names]
        if unknown or not classes:
            raise ValueError(f"real occluder classes {list(classes)}: expected some of {list(self.labels.names)}")
        self.root, self.classes = Path(root), tuple(classes)
        self.layout = open_layout(self.root, "celebamask", len(self.labels), composed_dir)
        self.files = self.layout.files("train")
        key = hashlib.sha256(json.dumps([str(self.root.resolve()), self.classes, self.files.names]).encode())
        self.cache = Path(cache_dir) / f"cutouts-{key.hexdigest()[:16]}.npz" if cache_dir else None
        self._cutouts: list[Cutout] | None = None

    def load(self) -> Sequence[Cutout]:
        """The cut-outs: read one at a time from the cache (cut out now and cached when it is missing); without a
        cache_dir, cut out now and held in memory."""
        if self._cutouts is None:
            if self.cache is None:
                self._cutouts = list(self.build())
            else:
                if not self.cache.is_file():
                    self.cache.parent.mkdir(parents=True, exist_ok=True)
                    _write_cutouts(self.cache, self.build())
                self._cutouts = CachedCutouts(self.cache)
            if not len(self._cutouts):
                raise ValueError(f"no {' or '.join(self.classes)} in the training split of {self.root}")
        return self._cutouts

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cutouts": None}  # a worker process opens the cache file itself

    def build(self) -> Iterator[Cutout]:
        """Each cut-out as it is found, photo by photo."""
        log.info(
            "cutting %s out of the %d training photos of %s", "/".join(self.classes), len(self.files.names), self.root
        )
        self.layout.prepare()  # the official release's label maps composed, once
        face_ids = self.labels.ids(self.labels.face)
        for index, name in enumerate(self.files.names):
            image, label = self.files.read(index)
            face = np.isin(label, face_ids)
            if face.sum() < 100:
                continue
            face_ys, face_xs = np.nonzero(face)
            for kind in self.classes:
                mask = label == self.labels.names.index(kind)
                if mask.sum() < 0.005 * mask.size:  # a few stray pixels are no object
                    continue
                ys, xs = np.nonzero(mask)
                y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                yield Cutout(
                    rgb=image[y0:y1, x0:x1].copy(),
                    mask=mask[y0:y1, x0:x1].copy(),
                    face_centre=np.array([face_xs.mean() - x0, face_ys.mean() - y0]),
                    face_width=float(face_xs.max() - face_xs.min() + 1),
                    luminance=_luminance(image, face),
                    kind=kind,
                    source=name,
                )


def _write_cutouts(path: Path, cutouts: Iterable[Cutout]) -> None:
    """The cut-outs streamed into one file as they come (never all in memory), with their count last."""

    def arrays():
        count = 0
        for i, c in enumerate(cutouts):
            yield from ((f"{i}/rgb", c.rgb), (f"{i}/mask", c.mask))
            yield f"{i}/face", np.array([*c.face_centre, c.face_width, c.luminance])
            yield f"{i}/names", np.array([c.kind, c.source])
            count += 1
        yield "count", np.array(count)

    write_npz(path, arrays())


class CachedCutouts(Sequence[Cutout]):
    """The cached cut-outs, each read from the file when asked for: the full CelebAMask-HQ's training split has
    thousands of eyeglasses and hats, which no process (nor each loader worker) holds at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = None
        self._count = int(self._open()["count"])

    def _open(self):
        if self._file is None:
            self._file = np.load(self.path)
        return self._file

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> Cutout:
        if not -self._count <= i < self._count:
            raise IndexError(f"cut-out {i} of {self._count}")
        i %= self._count
        data = self._open()
        x, y, width, luminance = data[f"{i}/face"]
        kind, source = (str(s) for s in data[f"{i}/names"])
        return Cutout(data[f"{i}/rgb"], data[f"{i}/mask"], np.array([x, y]), width, luminance, kind, source)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}  # never pickle the open file into worker processes


@dataclass(frozen=True)
class RealOcclusion:
    """The real-occluder test condition: image `index` wears cut-out number (seed, index)'s draw, placed as it was
    worn (its source face's centre and width onto this face's, with a little jitter), its brightness scaled to this
    face's, its edges feathered over `feather` of the face's width. The scored mask is where it is at least half
    opaque; coverage is what it hides of the face, as it falls (a hat may hide hair only)."""

    occluders: RealOccluders
    seed: int = 0
    face: tuple[int, ...] = LAPA_FACE
    # The class id each kind takes in the scored class set (CelebAMask-HQ: eye_g, hat); a kind it lacks (LaPa's
    # 11 classes have no occluder class) is background, as for the drawn occluders.
    label_as: tuple[tuple[str, int], ...] = ()
    feather: float = 0.01
    min_hidden: float = 0.02  # redraw (up to `tries` times) an object that hides less face or hair than this
    tries: int = 10

    def __call__(self, index: int, label: np.ndarray, image: np.ndarray | None = None) -> Occlusion:
        rng = np.random.default_rng([self.seed, index, 1])
        cutouts = self.occluders.load()
        face = face_mask(label, self.face)
        ys, xs = np.nonzero(face) if face.any() else np.mgrid[: label.shape[0], : label.shape[1]].reshape(2, -1)
        width = xs.max() - xs.min() + 1
        size = (label.shape[1], label.shape[0])
        for _ in range(self.tries):  # a hat worn above a photo's top edge hides nothing: draw another
            cutout = cutouts[rng.integers(len(cutouts))]
            scale = width / cutout.face_width * rng.uniform(0.95, 1.05)
            centre = np.array([xs.mean(), ys.mean()]) + rng.uniform(-0.03, 0.03, 2) * width
            matrix = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]])
            matrix[:, 2] = centre - scale * cutout.face_centre
            opacity = cv2.warpAffine(cutout.mask.astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR)
            if np.count_nonzero((opacity >= 0.5) & (label != BACKGROUND)) >= self.min_hidden * face.sum():
                break
        alpha = cv2.GaussianBlur(opacity, (0, 0), max(0.5, self.feather * width))
        mask = alpha >= 0.5
        relative = _luminance(image, face) / max(cutout.luminance, 1.0) if image is not None else 1.0
        brightness = float(np.clip(relative, 0.6, 1.6))
        coverage = np.count_nonzero(mask & face) / max(1, face.sum())
        label_as = dict(self.label_as).get(cutout.kind, BACKGROUND)

        @cache
        def whole() -> np.ndarray:  # only if applied: the clean test photos need the mask alone
            fill = cv2.warpAffine(cutout.rgb, matrix, size, flags=cv2.INTER_LINEAR).astype(np.float32)
            return np.clip(fill * brightness, 0, 255)

        def paint(where: np.ndarray | None = None) -> np.ndarray:
            return whole() if where is None else whole()[where]

        return Occlusion(mask, paint, cutout.kind, float(coverage), alpha, label_as)
