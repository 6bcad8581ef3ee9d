"""The Hydra resolvers the configs use, registered on import (facseg's own `__init__` imports this module).

`${facseg_root:}`: where data and logs land (facseg.PROJECT_ROOT); `${sweep_name:}`: the default group of a sweep's
W&B runs; `${run_name:...}`, `${run_tags:...}`: each run's W&B name and tags.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def _sweep_name() -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def _swept(keys_to_skip: tuple[str, ...]) -> list[str]:
    """The overrides of this job whose values the sweep varies (say `optimizer.lr=0.001`), but for `keys_to_skip`.

    A sweep's own overrides (multirun.yaml, written before its first job) name what varies: its sweep overrides
    (`a=1,2`, `choice(...)`, `range(...)`, ...) and a search's parameters.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return []
    sweep = Path(HydraConfig.get().sweep.dir) / "multirun.yaml"
    if not sweep.is_file():
        return []
    hydra_cfg = OmegaConf.load(sweep).hydra
    parser = OverridesParser.create()
    varied = {o.key_or_group for o in parser.parse_overrides(list(hydra_cfg.overrides.task)) if o.is_sweep_override()}
    varied |= set(hydra_cfg.sweeper.get("params") or {})
    job = parser.parse_overrides(OmegaConf.to_container(HydraConfig.get().overrides.task))
    return [o.input_line for o in job if o.key_or_group in varied - set(keys_to_skip)]


def _run_name(model: str, seed: int) -> str:
    """`<model>-s<seed>`, then whatever else this sweep varies: one name per point of a comparison."""
    return " ".join([f"{model}-s{seed}", *_swept(("model", "seed"))])


def _run_tags(model: str, data: str, seed: int, tags: list) -> list[str]:
    return [model, data, f"seed{seed}", *tags]


def register(project_root: Path) -> None:
    OmegaConf.register_new_resolver("facseg_root", lambda: str(project_root), replace=True)
    OmegaConf.register_new_resolver("sweep_name", _sweep_name, replace=True)
    OmegaConf.register_new_resolver("run_name", _run_name, replace=True)
    OmegaConf.register_new_resolver("run_tags", _run_tags, replace=True)
