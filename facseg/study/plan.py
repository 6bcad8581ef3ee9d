"""What a study consists of and where each piece lives in its directory: the seeds, the arms (training conditions),
the run folders and the ensembles of the clean-trained runs. Reads the run record; runs nothing."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from facseg.runtime.record import read_metrics, read_status

STATE_FILE, CHOSEN_FILE = "study.json", "chosen.json"
OCCLUSION_ARM = "occl"  # the folder tag of the occlusion-trained runs


class StudyPlan:
    """`cfg`: the study's composed config (conf/study.yaml); `directory`: DIR, where everything lands."""

    def __init__(self, cfg: DictConfig, directory: Path) -> None:
        self.cfg, self.settings, self.dir = cfg, cfg.study, directory
        self.name = directory.name

    def seeds(self) -> list[int]:
        return [self.cfg.seed + 1 + i for i in range(self.settings.seeds)]

    def arms(self) -> dict[str, list[str]]:
        """`study.arms`, the training conditions each architecture's chosen settings are retrained under, by their
        runs' folder tag: clean (as configured), occluded (occluders on `study.occlusion_p` of the training images)."""
        known = {"clean": ("", []), "occluded": (OCCLUSION_ARM, [f"data.occlusion.p={self.settings.occlusion_p}"])}
        unknown = [arm for arm in self.settings.arms if arm not in known]
        if unknown or not self.settings.arms:
            raise ValueError(f"study.arms={list(self.settings.arms)}: expected some of {', '.join(known)}")
        return dict(known[arm] for arm in self.settings.arms)

    def run_dir(self, model: str, seed: int, arm: str = "") -> Path:
        return self.dir / "runs" / f"{model}{arm and f'-{arm}'}-s{seed}"

    @staticmethod
    def arm_label(model: str, arm: str) -> str:
        return f"{model} (occlusion-trained)" if arm else model

    def ensembles(self, models: list[str]) -> list[tuple[str, list[Path], Path]]:
        """(label, member checkpoints, output folder) of every ensemble, equal and fitted weights: each
        architecture's seeds, then the architectures together, one ensemble per seed."""
        best = {}
        for model in models:
            for seed in self.seeds():
                metrics = read_metrics(self.run_dir(model, seed))
                if read_status(self.run_dir(model, seed))["status"] == "ok" and metrics:
                    best[model, seed] = Path(metrics["best_checkpoint"])
        found = []
        for model in models:
            seeds = [s for s in self.seeds() if (model, s) in best]
            if len(seeds) > 1:
                found.append((f"{model} x{len(seeds)} seeds", [best[model, s] for s in seeds], f"{model}-seeds"))
        for seed in self.seeds():
            present = [m for m in models if (m, seed) in best]
            if len(present) > 1:
                found.append(("+".join(present), [best[m, seed] for m in present], f"{'+'.join(present)}-s{seed}"))
        return [
            (f"{label} ({weighting})", members, self.dir / "ensembles" / f"{folder}-{weighting}")
            for label, members, folder in found
            for weighting in ("equal", "fitted")
        ]
