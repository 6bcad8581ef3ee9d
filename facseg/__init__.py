"""facseg: face parsing experiments on LaPa with PyTorch Lightning and Hydra."""

import os
from pathlib import Path

from omegaconf import OmegaConf

# albumentations asks PyPI for a newer version on import: a network call that stalls on offline compute nodes.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# `${facseg_root:}` in the configs: data and logs land in the project, whatever the working directory.
OmegaConf.register_new_resolver("facseg_root", lambda: str(PROJECT_ROOT), replace=True)


def _sweep_name() -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


# `${sweep_name:}`: groups a sweep's W&B runs.
OmegaConf.register_new_resolver("sweep_name", _sweep_name, replace=True)
