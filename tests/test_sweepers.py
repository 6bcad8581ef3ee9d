"""The sweepers and launchers of the optional `sweepers` extra, really run: Optuna and submitit's local launcher."""

import json

import pytest
import yaml

from tests.helpers import FEW_CONDITIONS, TINY, run_facseg, tiny_data

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -e '.[sweepers]'")


assert TINY[0].startswith("data.image_size=")


def run(args, cwd):
    return run_facseg(["-m", *args], cwd, timeout=900)


@pytest.mark.slow
def test_optuna_search_tolerates_failed_trials_and_writes_the_best(tmp_path, tiny_root):
    sweep = tmp_path / "search"
    # image_size 100 fails the config guard: some trials fail, the search goes on. Sampler seed 1 draws both sizes
    # in its 3 random start-up trials.
    result = run(
        [
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=3",
            "hydra.sweeper.sampler.seed=1",
            "data.image_size=choice(64,100)",
            *TINY[1:],
            *FEW_CONDITIONS,
            *tiny_data(tiny_root),
            "logger=csv",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    statuses = [j["status"] for j in summary["jobs"]]
    assert len(statuses) == 3 and "ok" in statuses and "failed" in statuses, statuses
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_params"]["data.image_size"] == 64 and set(best["best_params"]) >= {
        "optimizer.lr",
        "loss.dice_weight",
    }
    scores = [j["metrics"]["val/f1_fg"] for j in summary["jobs"] if j["status"] == "ok"]
    assert best["best_value"] == pytest.approx(max(scores))


@pytest.mark.slow
def test_sweep_through_the_submitit_local_launcher(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    submitit = f"hydra.launcher.submitit_folder={tmp_path / 'submitit'}"
    result = run(
        [
            "hydra/launcher=submitit_local",
            "model=unet,pspnet",
            *TINY,
            *FEW_CONDITIONS,
            *tiny_data(tiny_root),
            "logger=csv",
            f"hydra.sweep.dir={sweep}",
            submitit,
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(j["job"], j["status"]) for j in summary["jobs"]] == [("0_unet", "ok"), ("1_pspnet", "ok")]
    assert all(j["metrics"]["test/miou"] is not None for j in summary["jobs"])


def test_slurm_preset_asks_for_one_task_per_gpu_and_reads_site_settings():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tests.helpers import CONF_DIR

    overrides = [
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
        "+slurm.partition=gpu",
        "+slurm.account=my-lab",
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (2, 4, 4)
    assert (launcher["partition"], launcher["account"], launcher["qos"]) == ("gpu", "my-lab", None)
    assert launcher["max_num_timeout"] > 0 and launcher["signal_delay_s"] > 0  # requeue, SIGTERM before the limit
