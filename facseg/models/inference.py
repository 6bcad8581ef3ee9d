"""A trained parser as one callable, whatever the file: a Lightning checkpoint, an ONNX model or TorchScript.

Every kind carries the crop it was trained on (image size, margin), its class set and its normalisation, so that
a photo is cut and standardised as in training: a `.ckpt` in its hyperparameters, an exported file in its metadata
(facseg.export writes it).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from facseg.data.labels import LabelMap
from facseg.models.ensemble import combine, mirror_prediction
from facseg.runtime.precision import AUTO, scoring_precision

METADATA_KEY = "facseg"  # ONNX metadata_props key / TorchScript extra file holding the JSON below
PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}


@dataclass
class Parser:
    """`run`: N x 3 x S x S normalised float32 crops -> N x C x S x S float32 logits (NumPy in, NumPy out)."""

    run: Callable[[np.ndarray], np.ndarray]
    image_size: int
    margin: float
    align: bool  # trained on landmark-aligned crops, or on whole (letterboxed) photos such as CelebA-HQ's
    model: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: LabelMap

    def normalise(self, crops: np.ndarray) -> np.ndarray:
        """N x S x S x 3 uint8 RGB crops -> N x 3 x S x S float32, as the training pipeline normalises them."""
        scaled = crops.astype(np.float32) / 255.0
        standard = (scaled - np.array(self.mean, np.float32)) / np.array(self.std, np.float32)
        return standard.transpose(0, 3, 1, 2).copy()


def metadata(module) -> dict:
    """What an exported file must carry to be used like its checkpoint."""
    hparams = module.hparams
    if not hparams.get("crop") or not hparams.get("normalisation"):
        raise ValueError("this checkpoint records no crop or normalisation (it predates them): retrain it")
    crop, normalisation = hparams["crop"], hparams["normalisation"]
    return {
        "model": hparams.model["name"],
        # The precision its run trained in: precision=auto parses in it (float32 when not recorded).
        "trained_precision": module.trained_with.get("precision"),
        "image_size": int(crop["image_size"]),
        "margin": float(crop["margin"]),
        "align": bool(crop["align"]),
        "labels": module.label_map.to_dict(),
        "mean": [float(v) for v in normalisation["mean"]],
        "std": [float(v) for v in normalisation["std"]],
    }


def _parser(run: Callable[[np.ndarray], np.ndarray], meta: dict) -> Parser:
    return Parser(
        run,
        meta["image_size"],
        meta["margin"],
        meta.get("align", True),  # files exported before `align` was recorded were all aligned
        meta["model"],
        tuple(meta["mean"]),
        tuple(meta["std"]),
        LabelMap.from_config(meta["labels"]),
    )


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_parser(
    path: str | Path,
    device: str = "auto",
    precision: str = "auto",
    channels_last: bool = False,
    compile: bool = False,
    tta: str | None = None,
) -> Parser:
    """Load a `.ckpt`, `.onnx` or `.pt` (TorchScript) parser. The speed knobs apply to checkpoints; `tta=flip`
    averages each prediction with the prediction of the mirrored crop (left/right classes swapped back)."""
    if tta not in (None, "flip"):
        raise ValueError(f"tta={tta}: expected flip, or null for none")
    parser = _load(Path(path), device, precision, channels_last, compile)
    if tta == "flip":
        parser.run = _flip_tta(parser.run, torch.from_numpy(parser.labels.mirror()))
    return parser


def ensemble(parsers: list[Parser]) -> Parser:
    """Several parsers as one: the mean of their softmax probabilities in the crop (facseg.evaluate averages after
    warping each member back to the photo). They must cut and standardise alike and share the class set."""
    first = parsers[0]
    for other in parsers[1:]:
        for key in ("image_size", "margin", "align", "mean", "std"):
            if getattr(other, key) != getattr(first, key):
                raise ValueError(
                    f"{first.model} and {other.model} were trained with different {key} "
                    f"({getattr(first, key)} and {getattr(other, key)}): an ensemble needs models trained alike"
                )
        if other.labels.to_dict() != first.labels.to_dict():
            raise ValueError(f"{first.model} and {other.model} predict different class sets")
    weights = torch.full((len(parsers),), 1 / len(parsers))

    def run(images: np.ndarray) -> np.ndarray:
        return combine(torch.stack([torch.from_numpy(p.run(images)) for p in parsers]), weights).numpy()

    return replace(first, run=run, model="+".join(p.model for p in parsers))


def _flip_tta(run: Callable[[np.ndarray], np.ndarray], mirror: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    def run_both_views(images: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(run(images))
        mirrored = mirror_prediction(torch.from_numpy(run(np.ascontiguousarray(images[..., ::-1]))), mirror)
        return combine(torch.stack([logits, mirrored]), torch.tensor([0.5, 0.5])).numpy()

    return run_both_views


def _load(path: Path, device: str, precision: str, channels_last: bool, compile: bool) -> Parser:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file (a .ckpt from training, or a .onnx / .pt from export)")
    if str(precision) not in (*PRECISIONS, AUTO):
        raise ValueError(f"precision={precision}: expected one of {', '.join(PRECISIONS)}, {AUTO}")
    if path.suffix == ".onnx":
        return _load_onnx(path)
    target = _device(device)
    if path.suffix == ".pt":
        extra = {METADATA_KEY: ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            net = torch.jit.load(str(path), map_location=target, _extra_files=extra)
        meta = json.loads(extra[METADATA_KEY])
    elif path.suffix == ".ckpt":
        from facseg.models.module import FaceSegModule

        module = FaceSegModule.load_from_checkpoint(
            path, map_location=target, weights_only=True, channels_last=channels_last, compile=compile
        )
        module.configure_model()
        meta, net = metadata(module), module
    else:
        raise ValueError(f"{path}: expected a .ckpt, .onnx or .pt (TorchScript) file")
    net.eval()
    if str(precision) == AUTO:  # as a rescoring's: bfloat16 where the run trained in it and the device has it natively
        resolved = scoring_precision(AUTO, target.type, [meta.get("trained_precision")])
        precision = "bf16" if resolved == "bf16-mixed" else "32"
    dtype = PRECISIONS[str(precision)]

    @torch.inference_mode()
    def run(images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(images).to(target)
        autocast = torch.autocast(target.type, dtype=dtype) if dtype is not None else nullcontext()
        with autocast:
            return net(batch).float().cpu().numpy()

    return _parser(run, meta)


def _load_onnx(path: Path) -> Parser:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=ort.get_available_providers())
    meta_json = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if meta_json is None:
        raise ValueError(f"{path}: no facseg metadata; export the model with `python -m facseg.export`")
    meta = json.loads(meta_json)
    name = session.get_inputs()[0].name

    def run(images: np.ndarray) -> np.ndarray:
        return session.run(None, {name: images.astype(np.float32)})[0]

    return _parser(run, meta)
