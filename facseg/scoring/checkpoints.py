"""Checkpoints as a test pass loads them: each with the data settings it was trained with (crop, class set,
normalisation), read from the checkpoint itself, so that the data config only says where the data is and how to
score it. An explicit data override that contradicts a checkpoint, and an ensemble whose members disagree, are
refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from facseg.models.module import FaceSegModule

SETTINGS = ("crop", "labels", "normalisation")  # what a checkpoint records of the data it was trained on


def load(path: str) -> FaceSegModule:
    """The checkpoint's module, in the memory layout its run trained and tested in: in bf16 the layout moves the
    numbers, and a rescoring is to give the run's own test (a checkpoint that does not record it: training's default,
    channels_last)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    module = FaceSegModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    module.channels_last = module.trained_with.get("channels_last", True)  # applied by configure_model
    return module


def checkpoint_settings(paths: list[str], members: list[FaceSegModule]) -> dict[str, Any]:
    """The data settings the checkpoints were trained with; raises when a member lacks them or members disagree."""
    found = []
    for path, member in zip(paths, members):
        settings = {key: member.hparams.get(key) for key in SETTINGS}
        missing = [key for key, value in settings.items() if value is None]
        if missing:
            raise ValueError(f"{path} records no {', '.join(missing)} (it predates them): retrain it with this facseg")
        found.append(OmegaConf.to_container(OmegaConf.create(settings)))  # tuples and lists alike
    for key in SETTINGS:
        for path, settings in zip(paths[1:], found[1:]):
            if settings[key] != found[0][key]:
                raise ValueError(
                    f"the ensemble's members were trained with different {key}: {paths[0]} has {found[0][key]}, "
                    f"{path} has {settings[key]}; ensemble checkpoints trained alike"
                )
    return found[0]


def data_config(data: DictConfig, settings: dict[str, Any], source: str) -> DictConfig:
    """The data config with the checkpoint's crop and normalisation; an explicit value must agree with it."""
    data = data.copy()
    wanted = {**settings["crop"], "normalisation": settings["normalisation"]}
    with open_dict(data):
        for key, value in wanted.items():
            given = data.get(key)
            given = OmegaConf.to_container(given) if OmegaConf.is_config(given) else given
            if given is not None and given != value:
                raise ValueError(
                    f"data.{key}={given} contradicts the checkpoint, trained with {key}={value} ({source}): "
                    f"drop the override, the checkpoint's own settings are used"
                )
            data[key] = value
    return data
