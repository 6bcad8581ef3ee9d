"""Rows appended to a file and read back as one memory-mapped array: each image's counts kept on disk, not in
memory, while a test pass runs.

A test pass keeps, for every scored stage and every test image, a confusion matrix, a squared error and a pixel
count (what the report's intervals resample). One run's test of LaPa's 2,000 photos holds 63 stages of them; the
study's pass scores 31 runs and ensembles at once: 31 x 63 x 2,000 matrices of 11 x 11 int64, 3.9 GB, and 11 GB in
CelebAMask-HQ's 19 classes. Spooled, they cost the page cache, which the system reclaims. The files live in the
temporary folder (TMPDIR: a cluster's node-local scratch) and are unlinked from the start, so nothing is left
behind, however the process ends.
"""

from __future__ import annotations

import tempfile

import numpy as np


class Spool:
    """Rows of one dtype and row shape, appended in order."""

    def __init__(self, dtype: np.dtype | type, shape: tuple[int, ...] = ()) -> None:
        self.dtype, self.shape, self.rows = np.dtype(dtype), tuple(shape), 0
        self.file = tempfile.TemporaryFile(prefix="facseg-spool-")

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} appended to a spool of rows {self.shape}")
        self.file.write(rows.tobytes())
        self.rows += len(rows)

    def array(self) -> np.ndarray:
        """Every row so far, as a writable memory map of the file (a copy-on-write one: the file is never changed
        through it)."""
        if self.rows == 0:
            return np.empty((0, *self.shape), self.dtype)
        self.file.flush()
        return np.memmap(self.file, self.dtype, "c", shape=(self.rows, *self.shape))

    def close(self) -> None:
        self.file.close()  # the maps made of it stay readable
