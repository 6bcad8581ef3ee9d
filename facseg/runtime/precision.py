"""`precision=auto`: bfloat16 autocast where the device computes in bfloat16 natively, float32 elsewhere.

A GPU with bfloat16 (Ampere and later) runs it in its tensor cores. A CPU runs it natively only with AVX512-BF16
(AMD Zen 4, Intel Cooper Lake) or AMX (Intel Sapphire Rapids and later), which oneDNN's bfloat16 kernels use;
elsewhere torch emulates bfloat16 through float32 and it is slower than float32 itself. The flags are read from the
processor, not guessed from its name. The resolved precision is what a run records (provenance.json).

`auto` trains a net in bfloat16 only where its config says `auto_bf16: true`: the precision check (`make
precision-check`, experiments/precision) showed that it keeps its accuracy in bf16; a net not shown to stays
float32. A checkpoint is scored as its run computed: `auto` follows the precision the checkpoint records (a
checkpoint that records none: float32). Nets trained or scored together (a study, an ensemble) share one
precision: bfloat16 only when every one of them may use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from facseg.runtime.speed import cpu_info

AUTO = "auto"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> frozenset[str]:
    """The processor's feature flags (Linux's /proc/cpuinfo); empty elsewhere."""
    return frozenset(cpu_info().get("flags", "").split())


def device_type(accelerator: str) -> str:
    """`cuda` or `cpu`: the device a Lightning Trainer with this `accelerator` runs on (`auto`: a GPU when there
    is one); another accelerator's own name."""
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu" if accelerator in ("auto", "cpu") else accelerator


def native_bf16(device_type: str) -> bool:
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return device_type == "cpu" and any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def trainer_precision(trainer: Any, nets: Iterable[Mapping]) -> str:
    """Lightning's `precision` for a trainer config (its `precision` and `accelerator`) training or testing `nets`
    (their model configs): `auto` resolved to bf16-mixed, when each net says `auto_bf16: true`, or 32-true; any
    other value as given."""
    setting = str(trainer.get("precision", "32-true"))
    if setting != AUTO:
        return setting
    native = native_bf16(device_type(str(trainer.get("accelerator", "auto"))))
    return "bf16-mixed" if native and all(net.get("auto_bf16", False) for net in nets) else "32-true"


def scoring_precision(setting: str, accelerator: str, trained: Iterable[str | None]) -> str:
    """The precision to score checkpoints that were trained in `trained` (None: not recorded) under the `setting`
    asked for: `auto` is the checkpoints' own, bf16-mixed only when every one was trained in it and this device
    computes bfloat16 natively (elsewhere it is emulated, slower than float32); any other value as given."""
    if str(setting) != AUTO:
        return str(setting)
    native = native_bf16(device_type(str(accelerator)))
    return "bf16-mixed" if native and all(p == "bf16-mixed" for p in trained) else "32-true"
