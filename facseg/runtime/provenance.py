"""What produced a run's numbers, kept beside them (provenance.json, facseg.runtime.record): the versions of the
packages that move them, the lock they came from, the precision, the device and its measured speed, and the seconds.

The same code gives other numbers with another OpenCV (JPEG decoding and warping), numpy, torch, timm or SMP, and
on another processor, whose kernels (AVX2, AVX-512, AMX) sum in other orders: a number is reproducible only with
what is recorded here. The report prints it once per study and names the runs that differ (facseg.report.provenance).
"""

from __future__ import annotations

import hashlib
import platform
from functools import cache
from importlib import metadata

import torch

import facseg
from facseg.runtime.speed import cpu_info, cpu_name, matmul_peak

# The distributions whose versions move a run's numbers (the data's decoding and warping, the nets, the training
# loop, the configuration, the metrics).
PACKAGES = (
    "torch",
    "numpy",
    "opencv-python-headless",
    "timm",
    "albumentations",
    "segmentation-models-pytorch",
    "pytorch-lightning",
    "hydra-core",
    "torchmetrics",
)
LOCK = facseg.PROJECT_ROOT / "requirements.lock"


def package_versions() -> dict[str, str | None]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def lock_digest() -> str | None:
    """The lock's SHA-256 (its first 16 hex digits), None where facseg was installed without its checkout."""
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()[:16] if LOCK.is_file() else None


def cpu_family() -> str:
    """The processor family whose kernels a run's float arithmetic follows: its vendor and x86 family number (Zen 3
    and 4 are AMD's 25, most Xeons since Skylake Intel's 6) and the widest instruction set torch runs, e.g.
    `AuthenticAMD-25-AVX512`. Two machines of one family run the same code paths; another family may sum in
    another order (issue 40: 3 mean-F1 points of the main job's SegNet between an Intel Xeon and an AMD EPYC)."""
    info = cpu_info()  # not Linux: the architecture names it as far as it can
    vendor = info.get("vendor_id") or platform.machine() or "unknown"
    return "-".join(part for part in (vendor, info.get("cpu family"), torch.backends.cpu.get_cpu_capability()) if part)


def device_record(device: torch.device) -> dict[str, str | int | None]:
    """The processor (its model, its family and the widest instruction set torch's CPU kernels run: AVX2, AVX512,
    ...), and the GPU where the run used one."""
    found = {
        "cpu": cpu_name() or platform.machine(),
        "cpu_family": cpu_family(),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    return found


SPEED_SIZE = 1024  # the matrix product timed: an eighth of `make bench-ref`'s 2048, under a second on 2 cores


@cache
def measured_speed(device: torch.device, precision: str) -> float:
    """GFLOP/s of a SPEED_SIZE matrix product on the device in the run's precision, once per process."""
    dtype = "bf16" if precision.startswith("bf16") else "16" if precision.startswith("16") else "32"
    return round(matmul_peak(device, dtype, SPEED_SIZE), 1)


def produced_by(device: torch.device, precision: str, seconds: float) -> dict:
    """One stage's record (training, or a test pass): versions, lock, precision, device, speed, seconds."""
    return {
        "packages": package_versions(),
        "lock": lock_digest(),
        "precision": str(precision),
        "device": device_record(device),
        f"matmul_{SPEED_SIZE}_gflops": measured_speed(device, str(precision)),
        "seconds": round(seconds, 1),
    }
