"""How many loader processes feed a run: `data.num_workers` as given, or `auto` (the default), by the device.

- On the CPU, none: the net's work is the run (a cached 128 px crop costs the loader about 1.4 ms, the U-Net about
  70 ms per image on 2 cores), and measured there 0, 1 and 2 workers train equally fast (docs/bench-data.txt), so
  none: no process start-up, no copy of the dataset per worker.
- On a GPU, the cores this process may use, shared among the machine's GPUs (a DDP run or a parallel sweep runs one
  process per GPU), less one for the process itself, at most 16: a 128 px training step of 8 crops takes about
  3 ms on an H200 (docs/performance.md), where one loader process makes about two cached crops (8 ms a crop at
  512 px), so a GPU needs four processes or more to keep up, the more the larger the crops; past 16, start-up and
  memory grow for no gain a GPU can show at these sizes. Not measured on a GPU yet: `make bench-data` there says.

The batches are the same whatever the count (each sample's augmentation is seeded by its index and epoch:
facseg.data.dataset), so the choice changes the speed only, never the numbers.
"""

from __future__ import annotations

import os

MOST = 16


def cores() -> int:
    """The cores this process may run on (its affinity: a SLURM allocation or taskset, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def loader_workers(setting: int | str, accelerator: str, gpus_on_node: int = 1, available: int | None = None) -> int:
    """`setting`: data.num_workers (a count, or "auto"); `accelerator`: "cpu" or another device type; `gpus_on_node`:
    the machine's GPUs, which share its cores; `available`: the cores (default: this process's)."""
    if setting == "auto":
        if accelerator == "cpu":
            return 0
        share = (available or cores()) // max(1, gpus_on_node)
        return max(1, min(MOST, share - 1))
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise ValueError(
            f"data.num_workers={setting!r}: expected a number of loader processes (0: load in the run's own "
            "process) or auto (chosen by the device: none on a CPU, the cores shared among the GPUs on one)"
        )
    return setting
