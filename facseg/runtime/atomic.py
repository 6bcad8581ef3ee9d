"""Atomic file writes: a kill never leaves a half-written file behind (the run record, reports, caches, outputs)."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename over it: readers see the old file or the new one."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_json(path: Path | str, data: Any) -> None:
    """JSON (no NaN: JSON has none), written whole or not at all."""
    write_bytes(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())


def write_npz(path: Path | str, arrays: dict[str, Any]) -> None:
    """Compressed NumPy arrays (`np.load` reads them back), written whole or not at all."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def json_number(value: Any) -> float | None:
    """A metric as JSON can hold it: JSON has no NaN, so an undefined metric is null."""
    value = float(value)
    return None if math.isnan(value) else value
