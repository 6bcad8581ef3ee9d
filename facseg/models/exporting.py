"""A checkpoint to ONNX or TorchScript, checked against PyTorch on a test input (`facseg.export` is its command)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from facseg.models.inference import METADATA_KEY, load_parser, metadata
from facseg.models.module import FaceSegModule

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


def _export_onnx(net: torch.nn.Module, example: torch.Tensor, path: Path, meta: dict, opset: int) -> None:
    import onnx

    batch = torch.export.Dim("batch")
    for name in ("onnxscript", "onnx_ir", "torch.onnx"):  # the exporter's progress chatter
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=["image"],
            output_names=["logits"],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            verbose=False,
        )
    model = program.model_proto
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _export_torchscript(net: torch.nn.Module, example: torch.Tensor, path: Path, meta: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but still the format C++ loads
        traced = torch.jit.trace(net, example)
    traced.save(str(path), _extra_files={METADATA_KEY: json.dumps(meta)})


def export(cfg: DictConfig) -> dict[str, Any]:
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format}: expected one of {', '.join(FORMATS)}")
    checkpoint = Path(cfg.ckpt_path or "")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
    output = Path(cfg.output) if cfg.output else checkpoint.with_suffix(FORMATS[cfg.format])
    if output.exists() and not cfg.overwrite:
        raise FileExistsError(f"{output} exists: give overwrite=true to replace it, or another output=")
    module = FaceSegModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True).eval()
    meta = metadata(module)
    size = meta["image_size"]
    net = module.net
    # Batch 2 to export, other batch sizes to check: the batch dimension must stay free.
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    partial = output.with_name(f".{output.name}.partial{output.suffix}")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        if cfg.format == "onnx":
            _export_onnx(net, example, partial, meta, cfg.opset)
        else:
            _export_torchscript(net, example, partial, meta)
        crops = torch.randn(cfg.parity_images, 3, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = net(crops).numpy()
        exported = load_parser(partial, device="cpu", precision="32").run(crops.numpy())  # as the file's graph
        difference = float(np.abs(exported - expected).max())
        scale = max(1.0, float(np.abs(expected).max()))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    # float32 rounding grows with the logits' size: the bound is relative to the largest logit when it exceeds 1.
    print(
        f"parity: max |logit difference| = {difference:.3g} over {cfg.parity_images} crops of {size} px; "
        f"largest |logit| {scale:.3g}; tolerance {cfg.tolerance:g} x {scale:.3g}"
    )
    if not difference <= cfg.tolerance * scale:
        partial.unlink(missing_ok=True)
        raise ValueError(
            f"exported {cfg.format} differs from PyTorch by {difference:.3g} > tolerance={cfg.tolerance} "
            f"x largest logit {scale:.3g}"
        )
    os.replace(partial, output)
    print(f"exported {meta['model']} -> {output}")
    return {"path": str(output), "max_abs_diff": difference, **meta}
