"""One job per GPU when a sweep runs its points in parallel on one machine.

Each job claims a device index by taking an exclusive lock on one of `size` lock files; it waits while all are
taken, and the lock goes when the job's process ends or the job finishes, even if it crashed. With the joblib
launcher running `size` jobs at a time, no two jobs ever share a GPU and none waits for long.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def claim_device(size: int, lock_dir: str | Path, poll_s: float = 0.5) -> Iterator[int]:
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for index in range(size):
            handle = (lock_dir / f"device{index}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            log.info("Claimed device %d of %d", index, size)
            try:
                yield index
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if not waited:
            log.info("All %d devices are taken; waiting for one", size)
            waited = True
        time.sleep(poll_s)
