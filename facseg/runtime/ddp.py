"""DDP that works inside Hydra sweeps.

Lightning's `ddp` strategy starts ranks > 0 by re-executing `sys.argv`. Inside a multirun, that is the whole sweep:
every child would run every job again (a second sweep, duplicate logger runs). HydraDDPStrategy starts each child
as a single run of the current job instead: the job's own overrides, in the job's own output directory, without
Hydra writing a second config there. A single run works the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher  # private, pinned

# Set for the processes of one job; a multirun runs its jobs in one process, so they are removed after each job.
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def job_command(local_rank: int) -> list[str]:
    """The current Hydra job as a single run, in its output directory."""
    hydra_cfg = HydraConfig.get()
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    return [
        sys.executable,
        "-m",
        "facseg.run",
        *overrides,
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',
        "hydra.output_subdir=null",
        f"hydra.job.name=rank{local_rank}",
    ]


class _JobLauncher(_SubprocessScriptLauncher):
    def _call_children_scripts(self) -> None:
        if not HydraConfig.initialized():
            return super()._call_children_scripts()
        self._check_can_spawn_children()
        self.procs = []
        env = self.cluster_environment
        os.environ.update(
            {
                "MASTER_ADDR": env.main_address,
                "MASTER_PORT": str(env.main_port),
                "NODE_RANK": str(env.node_rank()),
                "LOCAL_RANK": str(env.local_rank()),
                "WORLD_SIZE": str(self.num_processes * self.num_nodes),
            }
        )
        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(
                subprocess.Popen(job_command(local_rank), env=child_env, cwd=HydraConfig.get().runtime.cwd)
            )


class HydraDDPStrategy(DDPStrategy):
    """DDP whose extra processes run the current Hydra job, not the command line (see the module docstring)."""

    def _configure_launcher(self) -> None:
        super()._configure_launcher()
        if type(self._launcher) is _SubprocessScriptLauncher:
            self._launcher = _JobLauncher(self.cluster_environment, self.num_processes, self.num_nodes)


def end_ddp_job(trainer: pl.Trainer, failed: bool) -> None:
    """Leave nothing of this job's process group for the next job of the sweep, which runs in this same process.

    Lightning keeps the process group and the environment for reuse: the next job would talk to processes that
    are gone, and would not start its own (LOCAL_RANK set). A failed job's other ranks may wait forever on a
    collective: they are stopped.
    """
    launcher = trainer.strategy.launcher
    for proc in getattr(launcher, "procs", []):
        try:
            proc.wait(timeout=0 if failed else 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    for name in DDP_ENV:
        os.environ.pop(name, None)
