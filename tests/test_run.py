"""Real training runs: in-process for every model config, and a real Hydra multirun in a subprocess."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

import facseg
from facseg.data.labels import LabelMap
from facseg.evaluate import evaluate
from facseg.models.module import FaceSegModule
from facseg.runtime.record import read_arrays
from facseg.training.job import init_weights, train
from tests import wandb_log
from tests.helpers import (
    FEW_CONDITIONS,
    TINY,
    compose_evaluate,
    compose_train,
    run_facseg,
    same_number,
    subprocess_env,
    tiny_data,
)

CLASS_NAMES = LabelMap.named("lapa").names
SCALARS = ["miou", "pixel_acc", "rmse", "f1_fg"]
PER_CLASS = [f"{m}/{c}" for m in ("iou", "f1") for c in CLASS_NAMES]
TEST_KEYS = [f"{stage}/{k}" for stage in ("test", "occluded") for k in SCALARS + PER_CLASS]
OCCLUSION_KEYS = [f"occluded/drop/{k}" for k in ["miou", "f1_fg", *PER_CLASS]] + [
    "occluded/inside/pixel_acc",
    "occluded/inside/hallucinated",
    "occluded/inside/not_face",
    "occluded/outside/miou",
    "occluded/outside/f1_fg",
    "occluded/visible_clean/f1_fg",
    # every default condition: the severity levels, the targeted and real occluders
    *(f"occluded_severity/{c}/{k}" for c in ("0.1", "0.2", "0.3", "0.4", "0.5") for k in SCALARS),
    *(f"occluded_severity/{c}/inside/hallucinated" for c in ("0.1", "0.2", "0.3", "0.4", "0.5")),
    *(f"occluded_target/{part}/f1_fg" for part in ("eyes", "mouth", "nose")),
]


def assert_complete_metrics(metrics: dict, model: str, eval_resolution: str = "original") -> None:
    assert metrics["model"] == model
    assert metrics["eval_resolution"] == eval_resolution
    missing = [k for k in TEST_KEYS + OCCLUSION_KEYS if k not in metrics]
    assert not missing, f"metrics.json lacks {missing}"
    for key in [*TEST_KEYS[:4], "val/f1_fg", "occluded/inside/pixel_acc", "occluded/outside/miou"]:
        upper = 2**0.5 if key.endswith("rmse") else 1.0  # a certain, wrong prediction: sqrt(1 + 1)
        assert 0.0 <= metrics[key] <= upper, key
    assert metrics["occluded/drop/f1_fg"] == pytest.approx(metrics["test/f1_fg"] - metrics["occluded/f1_fg"])
    assert not any(k.startswith("val/") and k != "val/f1_fg" for k in metrics)  # test numbers only, plus the selector
    if eval_resolution == "original":
        # Inside the crop, background is no longer a sure thing: accuracy there is lower than over the photo.
        assert metrics["test/crop/pixel_acc"] < metrics["test/pixel_acc"]
        # The truth through the crop and back scores below 100 % but above any net trained for a few steps.
        assert metrics["test/f1_fg"] < metrics["ceiling/f1_fg"] < 1.0
        assert all(0 < metrics[f"ceiling/f1/{c}"] <= 1 for c in CLASS_NAMES)
    else:
        assert not any(k.startswith(("ceiling/", "test/crop/")) for k in metrics)


@pytest.mark.parametrize(
    ("model", "extra", "name"),
    [
        ("unet", [], "unet"),
        ("pspnet", [], "pspnet"),
        ("segnet", ["model.width=0.125"], "segnet"),
        ("smp", ["model.arch=fpn"], "fpn"),
        ("custom", ["model.net._target_=tests.custom_net.TinyNet", "model.name=tiny"], "tiny"),
    ],
)
def test_every_model_config_trains_and_writes_metrics(tmp_path, tiny_root, model, extra, name):
    overrides = [f"model={model}", *extra, *TINY, *tiny_data(tiny_root), "logger=csv"]
    cfg = compose_train(overrides, tmp_path)
    best = train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert_complete_metrics(metrics, name)
    assert metrics["val/f1_fg"] == pytest.approx(best)
    best_checkpoint = Path(metrics["best_checkpoint"])
    assert best_checkpoint.is_file() and best_checkpoint.parent == tmp_path / "checkpoints"
    # The selected weights alone (a third of the size); last.ckpt keeps what resuming needs.
    best_state = torch.load(best_checkpoint, weights_only=True)
    assert "optimizer_states" not in best_state and best_state["state_dict"]
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"]
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    assert_test_details(tmp_path, image_size=64)


def assert_test_details(run_dir: Path, image_size: int) -> None:
    """confusion.json, samples.npz and cost.json: what reports and W&B show beside the metrics."""
    confusion = json.loads((run_dir / "confusion.json").read_text())
    assert confusion["classes"] == list(CLASS_NAMES)
    test, occluded = np.array(confusion["test"]), np.array(confusion["occluded"])
    assert test.shape == (11, 11) and test.sum() == occluded.sum() == 4 * 96 * 96  # every test pixel, once
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert np.trace(test) / test.sum() == pytest.approx(metrics["test/pixel_acc"], abs=1e-6)
    # One confusion matrix per test image and stage, which add up to the pooled ones.
    per_image = read_arrays(run_dir / "per_image.npz")
    assert per_image["names"].tolist() == ["test_00000", "test_00001", "test_00002", "test_00003"]
    for stage in ("test", "occluded"):
        assert per_image[f"{stage}/index"].tolist() == [0, 1, 2, 3]
        assert per_image[f"{stage}/confusion"].shape == (4, 11, 11)
        assert np.array_equal(per_image[f"{stage}/confusion"].sum(0), confusion[stage])
        assert per_image[f"{stage}/pixels"].tolist() == [96 * 96] * 4
    pixels, squared_error = per_image["test/pixels"].sum(), per_image["test/squared_error"].sum()
    assert np.sqrt(squared_error / pixels) == pytest.approx(metrics["test/rmse"], rel=1e-6)
    # Under the occluders, only the pixels that hide face or hair count; the visible rest is scored twice, of the
    # occluded photo's prediction and of the clean one's.
    inside, outside = per_image["occluded/inside/pixels"], per_image["occluded/outside/pixels"]
    assert (inside > 0).all() and (inside + outside <= per_image["occluded/pixels"]).all()
    assert np.array_equal(per_image["occluded/hidden/pixels"], inside)
    assert np.array_equal(per_image["occluded/visible_clean/pixels"], outside)
    with np.load(run_dir / "samples.npz") as samples:
        assert samples["test/image"].shape == (4, image_size, image_size, 3)
        assert samples["occluded/prediction"].shape == samples["occluded/label"].shape == (4, image_size, image_size)
        assert samples["test/prediction"].max() < len(CLASS_NAMES)
    cost = json.loads((run_dir / "cost.json").read_text())
    assert cost["params"] > 0 and cost["gflops"] > 0 and cost["ms_per_image"] > 0


@pytest.mark.slow
def test_speed_knobs_train_on_the_cpu(tmp_path, tiny_root):
    """bf16 autocast (what experiment=lapa turns on for GPUs) on the CPU, and channels_last (the default) off."""
    cfg = compose_train(
        [*TINY, *tiny_data(tiny_root), "logger=csv", "trainer.precision=bf16-mixed", "speed.channels_last=false"],
        tmp_path,
    )
    train(cfg)
    assert_complete_metrics(json.loads((tmp_path / "metrics.json").read_text()), "unet")
    module = FaceSegModule.load_from_checkpoint(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert module.hparams.crop == {"image_size": 64, "align": True, "margin": 0.6}
    assert module.hparams.labels == LabelMap.named("lapa").to_dict()
    assert module.hparams.normalisation == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert "channels_last" not in module.hparams  # how a run ran, not what the net is: the checkpoint records it
    assert module.trained_with == {"precision": "bf16-mixed", "channels_last": False}
    # A rescoring computes as the run did (in bf16 the layout moves the numbers): the run's own test.
    trained = json.loads((tmp_path / "metrics.json").read_text())
    overrides = [f"ckpt_path={trained['best_checkpoint']}", *tiny_data(tiny_root), "trainer.precision=bf16-mixed"]
    rescored = evaluate(compose_evaluate(overrides, tmp_path / "rescored"))
    for key in ("test/miou", "test/f1_fg", "occluded/f1_fg"):
        assert rescored[key] == same_number(key, trained[key]), key


@pytest.mark.slow
def test_real_lapa_config_trains_from_the_crop_cache(tmp_path, tiny_root):
    cache = tmp_path / "cache"
    cfg = compose_train(
        ["data=lapa", f"data.root={tiny_root}", f"data.cache_dir={cache}", *TINY, "logger=csv"], tmp_path
    )
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["data"], metrics["eval_resolution"]) == ("lapa", "original")
    assert metrics["crop"] == {"image_size": 64, "align": True, "margin": 0.6}
    folders = sorted(p.name for p in next(cache.iterdir()).iterdir() if p.is_dir())
    assert folders == ["train-64px-align0.6", "val-64px-align0.6"]  # the test split is scored on the photos


def test_scoring_on_crops_is_recorded(tmp_path, tiny_root):
    cfg = compose_train(
        [*TINY, *tiny_data(tiny_root), "logger=csv", "data.eval_resolution=crop", "data.align=false"], tmp_path
    )
    train(cfg)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert_complete_metrics(metrics, "unet", eval_resolution="crop")
    assert metrics["crop"]["align"] is False


def test_lapa_preset_sizes_every_model_like_the_paper(tmp_path):
    sizes = {}
    for model in ("unet", "pspnet", "segnet"):
        cfg = compose_train(["experiment=lapa", f"model={model}", "data.root=/LaPa"], tmp_path)
        assert (cfg.data.name, cfg.data.image_size, cfg.data.root) == ("lapa", 512, "/LaPa")
        net = FaceSegModule(model=OmegaConf.to_container(cfg.model, resolve=True)).net
        sizes[model] = sum(p.numel() for p in net.parameters())
    assert sizes["segnet"] == pytest.approx(29.4e6, rel=0.01)
    assert compose_train(["experiment=lapa", "model=unet", "data.root=/LaPa"], tmp_path).model.encoder == "resnet34"


NO_NETWORK = """
import socket, sys, runpy
from pathlib import Path

log = Path(sys.argv.pop(1))
connect = socket.socket.connect
def guarded(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        with log.open("a") as f:
            f.write(f"{address}\\n")
        raise OSError(f"facseg test: no network, blocked {address}")
    return connect(self, address)
socket.socket.connect = guarded
sys.argv[0] = "facseg.run"
runpy.run_module("facseg.run", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_multirun_over_the_three_models(tmp_path, tiny_root):
    """The README's main job, in a real subprocess, on tiny data and with the network blocked."""
    sweep = tmp_path / "sweep"
    attempts = tmp_path / "network-attempts.txt"
    cmd = [
        sys.executable,
        "-c",
        NO_NETWORK,
        str(attempts),
        "-m",
        "model=unet,segnet,pspnet",
        f"hydra.sweep.dir={sweep}",
        *TINY,
        *tiny_data(tiny_root),
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not attempts.exists(), f"the run tried to reach the network: {attempts.read_text()}"

    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0_unet", "1_segnet", "2_pspnet"]
    for job, model in zip(jobs, ("unet", "segnet", "pspnet")):
        with (job / "csv" / "metrics.csv").open() as f:
            assert any(row.get("val/miou") for row in csv.DictReader(f))
        metrics = json.loads((job / "metrics.json").read_text())
        assert_complete_metrics(metrics, model)
        runs = list((job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(runs) == 1, f"{job.name}: expected exactly one W&B run, found {runs}"
        run = wandb_log.run_info(runs[0])
        assert (run.run_group, run.display_name) == (sweep.name, f"{model}-s0")
        assert list(run.tags) == [model, "synthetic", "seed0"]
        config = wandb_log.config(runs[0])
        assert config["model"]["name"] == model and config["seed"] == 0
        summary = wandb_log.summary(runs[0])
        for key in ("test/miou", "occluded/f1_fg", "occluded/drop/f1/skin"):
            assert summary[key] == pytest.approx(metrics[key]), key
        assert summary["test/per_class/_type"] == "table-file" and summary["test/per_class/nrows"] == 11
        assert summary["test/confusion_matrix_table/nrows"] == 11 * 11
        assert summary["occluded/samples/_type"] == "images/separated" and summary["occluded/samples/count"] == 4
        media = runs[0].parent / "files" / summary["test/per_class/path"]
        table = json.loads(media.read_text())
        assert table["columns"][:3] == ["class", "test/iou", "test/f1"]
        assert table["data"][1][2] == pytest.approx(metrics["test/f1/skin"])
    assert not (tmp_path / "multirun").exists() and not (facseg.PROJECT_ROOT / "multirun").exists()


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path, tiny_root):
    """seed=0 included: the whole run, augmentations too, repeats exactly on the CPU."""
    overrides = [*TINY, *tiny_data(tiny_root), "logger=csv", "seed=0", "trainer.limit_train_batches=1.0"]
    results = []
    for attempt in ("a", "b"):
        train(compose_train(overrides, tmp_path / attempt))
        metrics = json.loads((tmp_path / attempt / "metrics.json").read_text())
        results.append({k: v for k, v in metrics.items() if k != "best_checkpoint"})
    assert results[0] == results[1]


def learning_rates(run_dir: Path) -> dict[str, list[float]]:
    with (run_dir / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows if r[k]] for k in rows[0] if k.startswith("lr-")}


@pytest.mark.slow
def test_optimizer_and_schedule_come_from_config_and_are_logged_every_step(tmp_path, tiny_root):
    base = [*TINY, *FEW_CONDITIONS, *tiny_data(tiny_root), "logger=csv", "trainer.max_epochs=2"]
    base.append("trainer.log_every_n_steps=1")
    # The default: AdamW at 3e-3, linear warm-up (here over half of the 4 steps), then a cosine to 0.
    train(compose_train([*base, "scheduler.warmup_fraction=0.5"], tmp_path / "default"))
    assert learning_rates(tmp_path / "default") == {"lr-AdamW": pytest.approx([1.5e-3, 3e-3, 3e-3, 1.5e-3])}
    # Another optimizer, and no schedule: a constant rate.
    swapped = ["optimizer._target_=torch.optim.SGD", "optimizer.lr=0.01", "+optimizer.momentum=0.9", "~scheduler"]
    train(compose_train([*base, *swapped], tmp_path / "sgd"))
    assert learning_rates(tmp_path / "sgd") == {"lr-SGD": [0.01] * 4}
    hparams = FaceSegModule.load_from_checkpoint(tmp_path / "sgd" / "checkpoints" / "last.ckpt").hparams
    assert "optimizer" not in hparams and "scheduler" not in hparams  # how it was trained, not what it is


@pytest.mark.slow
def test_wandb_runs_are_named_grouped_and_keep_the_best_validation(tmp_path, tiny_root):
    """A study's W&B runs: named by model, seed and what the sweep varies, in the study's group, with its tags."""
    sweep = tmp_path / "sweep"
    args = ["-m", "optimizer.lr=0.003,0.001", "group=my-study", "tags=[first-try,cpu]", *TINY, *tiny_data(tiny_root)]
    args += FEW_CONDITIONS
    result = run_facseg([*args, "trainer.max_epochs=3", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for job, lr in zip(sorted(sweep.glob("*_unet")), ("0.003", "0.001")):
        (log,) = job.glob("wandb/offline-run-*/run-*.wandb")
        run = wandb_log.run_info(log)
        assert (run.display_name, run.run_group) == (f"unet-s0 optimizer.lr={lr}", "my-study")
        assert list(run.tags) == ["unet", "synthetic", "seed0", "first-try", "cpu"]
        with (job / "csv" / "metrics.csv").open() as f:
            val = [float(row["val/f1_fg"]) for row in csv.DictReader(f) if row.get("val/f1_fg")]
        summary, metrics = wandb_log.summary(log), json.loads((job / "metrics.json").read_text())
        assert summary["val/f1_fg"] == {"max": pytest.approx(max(val))} == {"max": pytest.approx(metrics["val/f1_fg"])}
        assert summary["test/miou"] == pytest.approx(metrics["test/miou"])


def test_a_run_starts_from_another_runs_weights_and_refuses_ones_that_cannot_fit(tmp_path, checkpoint):
    """init_from: fine-tuning from any checkpoint (the best one is weights only, so ckpt_path cannot resume it)."""
    assert checkpoint.name == "best.ckpt" and checkpoint.samefile(next(checkpoint.parent.glob("best-epoch*.ckpt")))
    trained = torch.load(checkpoint, weights_only=True)["state_dict"]
    fresh = FaceSegModule(model=OmegaConf.to_container(compose_train([], tmp_path).model, resolve=True))
    init_weights(fresh, str(checkpoint))
    assert all(torch.equal(value, trained[key]) for key, value in fresh.state_dict().items())
    celebamask = LabelMap.named("celebamask").to_dict()
    with pytest.raises(ValueError, match=r"its class set \(lapa, 11 classes\) is not this run's \(celebamask, 19"):
        init_weights(FaceSegModule(model=dict(fresh.hparams.model), labels=celebamask), str(checkpoint))
    segnet = {"name": "segnet", "arch": "segnet", "width": 0.125}
    with pytest.raises(ValueError, match=r"its weights \(model unet, unet\) do not fit this run's net \(segnet\)"):
        init_weights(FaceSegModule(model=segnet), str(checkpoint))
    with pytest.raises(FileNotFoundError, match="init_from=nowhere.ckpt: no such checkpoint"):
        init_weights(fresh, "nowhere.ckpt")
