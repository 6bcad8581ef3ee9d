"""Atomic file writes: a kill never leaves a half-written file behind (the run record, reports, caches, outputs);
and the lock that lets several processes share a file (a crop cache, a study's study.json)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl  # POSIX: one process at a time in a locked block, the others wait
except ImportError:  # pragma: no cover - Windows: no lock, each process works on what it finds
    fcntl = None


@contextlib.contextmanager
def replacing(path: Path | str):
    """A temporary file beside `path` to write, renamed over `path` when the block ends without an error (and
    removed when it does not): readers see the old file or the new one."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_bytes(path: Path | str, data: bytes) -> None:
    with replacing(path) as partial:
        partial.write_bytes(data)


def write_json(path: Path | str, data: Any) -> None:
    """JSON (no NaN: JSON has none), written whole or not at all."""
    write_bytes(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())


@contextlib.contextmanager
def claimed(path: Path, wait: bool = False):
    """The exclusive lock on `path` (created if missing) for the block. Without `wait`, tried once: True if this
    process took it, False if another process holds it (it is doing the work the lock stands for)."""
    with open(path, "a") as handle:
        if fcntl is None:
            yield True
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on `path` (created if missing) for the block: other processes wait."""
    with claimed(path, wait=True):
        yield


def update_json(path: Path, change: Callable[[Any], None], empty: Callable[[], Any] = dict) -> Any:
    """`change` applied in place to the JSON as it is on disk now (`empty()` when there is none), written back
    whole, under a lock beside the file: processes that update one file at once each keep the others' changes.
    Returns what was written."""
    path = Path(path)
    with locked(path.with_name(f".{path.name}.lock")):
        data = json.loads(path.read_text()) if path.is_file() else empty()
        change(data)
        write_json(path, data)
    return data


def write_npz(path: Path | str, arrays: dict[str, Any] | Iterable[tuple[str, Any]]) -> None:
    """Compressed NumPy arrays (`np.load` reads them back), written whole or not at all. Streamed into the file an
    array at a time, as np.savez_compressed lays them out: `arrays` may be a generator (of name, array pairs) that
    makes each only when it is written, so that what is written never has to fit in memory at once."""
    items = arrays.items() if isinstance(arrays, dict) else arrays
    with replacing(path) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, array in items:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def json_number(value: Any) -> float | None:
    """A metric as JSON can hold it: JSON has no NaN, so an undefined metric is null."""
    value = float(value)
    return None if math.isnan(value) else value
