"""Result files, written so that a kill never leaves a half-written one behind."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write to a temporary file beside `path`, then rename over it: readers see the old file or the new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def json_number(value: Any) -> float | None:
    """A metric as JSON can hold it: JSON has no NaN, so an undefined metric is null."""
    value = float(value)
    return None if math.isnan(value) else value
