"""The process's memory: giving freed heap pages back, its peak resident size, and what the machine has free.

Why trimming: a test pass makes and frees photo-sized tensors every batch, between the small per-image counts it
keeps. glibc serves the freed blocks from its heap (its threshold for giving a large block its own mapping grows to
the size of the last one freed) and returns a page to the system only from the heap's top, so the holes pile up: one
run's test of 48 photos at 512 px with every default condition peaked at 8.2 GB resident while its live tensors
stayed at 0.23 GB, and the peak grew with the test split. Trimming as each batch's scores are freed keeps it at
1.8 GB, and 4x the photos adds 5 % (docs/performance.md). Pure standard library: any layer may use it.
"""

from __future__ import annotations

import ctypes
import os
import resource
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim; elsewhere nothing)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_bytes(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def resident_bytes() -> int:
    """The process's resident memory now (Linux; elsewhere its peak)."""
    return _status_bytes("VmRSS") or peak_bytes()


def peak_bytes() -> int:
    """The process's peak resident memory since it started or since reset_peak() (Linux's VmHWM)."""
    found = _status_bytes("VmHWM")
    if found is not None:
        return found
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return peak if os.uname().sysname == "Darwin" else peak * 1024


def reset_peak() -> bool:
    """Start measuring the peak afresh (Linux 4.0+: writing 5 to clear_refs resets VmHWM); False where it cannot."""
    try:
        CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def available_bytes() -> int | None:
    """Memory this process can still take: the system's available memory, or less under a cgroup's limit (a SLURM
    job, a container); None where neither can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for folder, limit, usage, stat, cache in (
        ("/sys/fs/cgroup", "memory.max", "memory.current", "memory.stat", "inactive_file"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory",
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "memory.stat",
            "total_inactive_file",
        ),
    ):
        try:
            cap, used = (Path(folder, name).read_text().strip() for name in (limit, usage))
            stats = dict(line.split() for line in Path(folder, stat).read_text().splitlines())
        except (OSError, ValueError):
            continue
        if cap.isdigit() and int(cap) < 1 << 60:  # "max", or v1's huge number: no limit
            # The working set, as container runtimes count it: page cache not recently used can be reclaimed.
            found.append(int(cap) - int(used) + int(stats.get(cache, 0)))
    return min(found) if found else None
