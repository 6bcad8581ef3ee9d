"""Class sets: what a dataset's label ids mean, defined by the dataset's config (conf/data/labels/*.yaml).

A LabelMap names the classes in id order and says which left/right pairs a mirror swaps, which classes the mean F1
averages, which count as the face (what an occluder's coverage is a fraction of), their display colours and the
published results to show beside ours. A checkpoint records its LabelMap (`labels`), so every later step (scoring,
flip test-time augmentation, prediction overlays, reports) uses the class set the net was trained on.

A LabelMapping turns one class set's labels into another's, as a dataset's config declares it (`mappings`): each
source class to a target class, pairs of sided classes to the target's image-left / image-right classes by where
they lie in the image, and classes left out of scoring (IGNORE). No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

BACKGROUND = 0  # id 0 is the background in every class set
IGNORE = 255  # a label value that is not scored (a class the target class set has no counterpart for)
LABELS_DIR = Path(__file__).resolve().parents[1] / "conf" / "data" / "labels"
FOLDER_CLASSES = "classes.yaml"  # a data=folder dataset's own class set


@dataclass(frozen=True)
class LabelMap:
    name: str
    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    flip_pairs: tuple[tuple[str, str], ...] = ()
    mean_f1: tuple[str, ...] = ()  # the classes the headline mean F1 averages
    face: tuple[str, ...] = ()  # the face's classes, hair and background out: what occluder coverage counts
    parts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # eyes, mouth, nose: what targeted occluders hide
    occluders: tuple[str, ...] = ()  # classes that are occluding objects (eyeglasses, hats): the natural subset
    # What a plausible parse is (facseg.metrics.structure): `single`, classes a face has one region of; `sides`,
    # left/right pairs, neither predicted where the truth has the other. Default: the flip pairs, for both.
    anatomy: dict[str, tuple] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)  # benchmark, results {method: mean F1 %}, note
    mappings: dict[str, dict[str, Any]] = field(default_factory=dict)  # target class set name -> mapping spec

    def __post_init__(self) -> None:
        where = f"label map {self.name!r}"
        if not self.names or self.names[BACKGROUND] != "background":
            raise ValueError(f"{where}: names must start with 'background' (id {BACKGROUND}), found {self.names[:1]}")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{where}: class names repeat: {list(self.names)}")
        if len(self.colours) != len(self.names):
            raise ValueError(f"{where}: {len(self.colours)} colours for {len(self.names)} classes")
        unknown_keys = set(self.anatomy) - {"single", "sides"}
        if unknown_keys:
            raise ValueError(f"{where}: anatomy takes `single` and `sides`, found {sorted(unknown_keys)}")
        if any(len(pair) != 2 for pair in self.anatomy.get("sides", ())):
            raise ValueError(f"{where}: anatomy.sides must be pairs [left, right], found {self.anatomy['sides']}")
        for key in ("flip_pairs", "mean_f1", "face", "parts", "occluders", "anatomy"):
            value = getattr(self, key)
            named = [n for group in value for n in group] if key == "flip_pairs" else list(value)
            named = [n for part in value.values() for n in part] if key == "parts" else named
            if key == "anatomy":
                named = list(value.get("single", ())) + [n for pair in value.get("sides", ()) for n in pair]
            unknown = [n for n in named if n not in self.names]
            if unknown:
                raise ValueError(f"{where}: {key} names unknown classes {unknown}; the classes are {list(self.names)}")

    @classmethod
    def from_config(cls, config: Any) -> LabelMap:
        """From a config node or a plain dict (a checkpoint's `labels`)."""
        if isinstance(config, LabelMap):
            return config
        if isinstance(config, str):  # data.labels=celebamask: a value where a config group was meant
            raise ValueError(
                f"data.labels={config}: a class set is a config group, chosen with a slash: data/labels={config}"
            )
        plain = _plain(config)
        return cls(
            name=plain["name"],
            names=tuple(plain["names"]),
            colours=tuple(tuple(int(v) for v in c) for c in plain["colours"]),
            flip_pairs=tuple(tuple(p) for p in plain.get("flip_pairs") or ()),
            mean_f1=tuple(plain.get("mean_f1") or (n for n in plain["names"] if n != "background")),
            face=tuple(plain.get("face") or ()),
            parts={k: tuple(v) for k, v in (plain.get("parts") or {}).items()},
            occluders=tuple(plain.get("occluders") or ()),
            anatomy=anatomy_rules(plain.get("anatomy"), plain.get("flip_pairs") or ()),
            published=dict(plain.get("published") or {}),
            mappings=dict(plain.get("mappings") or {}),
        )

    @classmethod
    def named(cls, name: str) -> LabelMap:
        """A class set shipped with facseg, by its file name in conf/data/labels."""
        path = LABELS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in LABELS_DIR.glob("*.yaml"))
            raise ValueError(f"no class set {name!r}: expected one of {known} ({LABELS_DIR})")
        return cls.from_config(yaml.safe_load(path.read_text()))

    @classmethod
    def of_folder(cls, root: Path | str) -> LabelMap:
        """A dataset's own class set, from ROOT/classes.yaml (data=folder): `names` in id order, background first;
        optional `colours`, `flip_pairs`, `mean_f1` (default: every class but the background), `face` (what an
        occluder's coverage counts; default: every class but the background and the occluders), `parts` (what
        the targeted occluded tests centre on), `occluders`, `anatomy` (`single`: classes a face has one region
        of; `sides`: left/right pairs; default: the flip pairs for both)."""
        path = Path(root) / FOLDER_CLASSES
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: data=folder reads its class set there (`names:` in id order, background "
                "first; docs/data.md, Your own dataset)"
            )
        spec = yaml.safe_load(path.read_text()) or {}
        names = spec.get("names")
        if not isinstance(names, list) or not names:
            raise ValueError(f"{path}: expected `names:`, the class names in id order, background first")
        occluders = list(spec.get("occluders") or ())
        defaults = {
            "name": Path(root).name,
            "colours": default_colours(len(names)),
            "face": [n for n in names[1:] if n not in occluders],
        }
        try:
            return cls.from_config({**defaults, **spec})
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e

    def single(self) -> list[int]:
        return self.ids(self.anatomy.get("single", ()))

    def sides(self) -> list[tuple[int, int]]:
        return [(self.names.index(a), self.names.index(b)) for a, b in self.anatomy.get("sides", ())]

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for checkpoints, metrics.json and exported files."""
        return {
            "name": self.name,
            "names": list(self.names),
            "colours": [list(c) for c in self.colours],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "mean_f1": list(self.mean_f1),
            "face": list(self.face),
            "parts": {k: list(v) for k, v in self.parts.items()},
            "occluders": list(self.occluders),
            "anatomy": {"single": list(self.anatomy["single"]), "sides": [list(p) for p in self.anatomy["sides"]]},
            "published": self.published,
            "mappings": self.mappings,
        }

    def __len__(self) -> int:
        return len(self.names)

    def ids(self, names: tuple[str, ...] | list[str]) -> list[int]:
        return [self.names.index(n) for n in names]

    def mirror(self) -> np.ndarray:
        """mirror[id] = the id a horizontal flip turns the class into (left/right pairs swapped)."""
        lut = np.arange(len(self.names), dtype=np.int64)
        for a, b in self.flip_pairs:
            i, j = self.names.index(a), self.names.index(b)
            lut[i], lut[j] = j, i
        return lut

    def colour_table(self) -> np.ndarray:
        """256 x 3 uint8 RGB, by label value: IGNORE (and any value past the classes) in grey."""
        table = np.full((256, 3), 128, np.uint8)
        table[: len(self.colours)] = self.colours
        return table


def default_colours(count: int) -> list[list[int]]:
    """Black for the background, then hues around the colour wheel."""
    import colorsys

    hues = [colorsys.hsv_to_rgb(i / max(1, count - 1), 0.75, 0.95) for i in range(count - 1)]
    return [[0, 0, 0], *([round(255 * v) for v in rgb] for rgb in hues)]


def anatomy_rules(spec: Any, flip_pairs: Any) -> dict[str, tuple]:
    """`single` and `sides` as tuples; what is not given follows the flip pairs (each sided class one region, and
    neither side where the truth has the other)."""
    spec = dict(spec or {})
    pairs = [tuple(p) for p in flip_pairs]
    single = spec.pop("single", [n for pair in pairs for n in pair])
    sides = spec.pop("sides", pairs)
    return {"single": tuple(single), "sides": tuple(tuple(p) for p in sides), **spec}


def _plain(config: Any) -> dict[str, Any]:
    return OmegaConf.to_container(config, resolve=True) if OmegaConf.is_config(config) else dict(config)


class LabelMapping:
    """Labels of `source`'s classes -> labels of `target`'s, as `source.mappings[target.name]` declares:

        classes: {source class: target class}    every source class not listed below must be named here
        by_position: [[a, b, left, right]]       of the two sided source classes, the one whose pixels lie further
                                                 to the image's left becomes `left`, the other `right`
        ignore: [source class]                   not scored: IGNORE

    By position because datasets disagree on what "left" means (CelebAMask-HQ: the subject's left, and 7 % of its
    masks the other way round; LaPa: the image's left). A sided class present without its partner is placed by
    the side of the face it lies on.
    """

    def __init__(self, source: LabelMap, target: LabelMap) -> None:
        spec = source.mappings.get(target.name)
        if spec is None:
            declared = sorted(source.mappings) or "none"
            raise ValueError(
                f"no class mapping from {source.name!r} ({len(source)} classes) to {target.name!r} "
                f"({len(target)} classes): {source.name}'s label map declares mappings to {declared}. Declare one "
                f"under `mappings.{target.name}` in conf/data/labels/{source.name}.yaml"
            )
        where = f"the mapping {source.name} -> {target.name}"
        classes, by_position, ignore = (
            spec.get("classes") or {},
            spec.get("by_position") or [],
            spec.get("ignore") or [],
        )
        covered = [*classes, *(n for quad in by_position for n in quad[:2]), *ignore]
        missing = [n for n in source.names if n not in covered]
        unknown_source = [n for n in covered if n not in source.names]
        targets = [*classes.values(), *(n for quad in by_position for n in quad[2:])]
        unknown_target = [n for n in targets if n not in target.names]
        malformed = [q for q in by_position if len(q) != 4]
        if missing or unknown_source or unknown_target or malformed or len(covered) != len(set(covered)):
            raise ValueError(
                f"{where} must map each of {source.name}'s classes once to one of {target.name}'s: "
                f"unmapped {missing}, unknown source classes {unknown_source}, unknown target classes "
                f"{unknown_target}, repeated {sorted({n for n in covered if covered.count(n) > 1})}, by_position "
                f"entries that are not [a, b, left, right] {malformed}"
            )
        self.lut = np.full(256, IGNORE, np.uint8)
        for a, b in classes.items():
            self.lut[source.names.index(a)] = target.names.index(b)
        self.sided = [(source.names.index(a), source.names.index(b), *target.ids(dst)) for a, b, *dst in by_position]
        self.face = source.ids(source.face) if source.face else list(range(1, len(source)))

    def __call__(self, label: np.ndarray) -> np.ndarray:
        out = self.lut[label]
        if not self.sided:
            return out
        face_x = _mean_column(np.isin(label, self.face))
        centre = face_x if face_x is not None else (label.shape[1] - 1) / 2
        for a, b, left, right in self.sided:
            in_a, in_b = label == a, label == b
            xa, xb = _mean_column(in_a), _mean_column(in_b)
            if xa is None and xb is None:
                continue
            if xa is not None and xb is not None:
                a_left = xa < xb
            else:  # one of the pair alone (a profile, a hidden eye): by the side of the face it lies on
                a_left = xa < centre if xa is not None else xb > centre
            out[in_a] = left if a_left else right
            out[in_b] = right if a_left else left
        return out


def _mean_column(mask: np.ndarray) -> float | None:
    """The mean x of a mask's pixels, None for an empty mask."""
    per_column = mask.sum(0)
    total = per_column.sum()
    return float(per_column @ np.arange(mask.shape[1]) / total) if total else None
