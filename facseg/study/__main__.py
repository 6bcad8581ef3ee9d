"""`python -m facseg.study [overrides] hydra.sweep.dir=DIR`: the fair comparison (facseg.study)."""

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.runtime.errors import user_errors


@hydra.main(version_base="1.3", config_path="../conf", config_name="study")
@user_errors
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    directory = Path(hydra_cfg.sweep.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    from facseg.study.orchestrator import Study  # torch and Lightning, once the config has composed

    Study(cfg, directory, overrides).run()


if __name__ == "__main__":
    main()
