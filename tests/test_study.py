"""facseg.study, really run: the same tuning budget per architecture, seeds, ensembles and the report, in a
subprocess as a user types it; killed and resumed; an architecture that fails leaves the others standing."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

import facseg
from facseg.runtime.precision import trainer_precision
from facseg.runtime.record import read_provenance
from tests import wandb_log
from tests.helpers import FEW_CONDITIONS, TINY, compose_train, subprocess_env, tiny_data

pytestmark = pytest.mark.slow  # every test here trains nets or starts commands: `make test-all`

ROOT = facseg.PROJECT_ROOT

# Two architectures: the study treats every one alike, and SegNet, the slowest here, has tests of its own.
MODELS = ["unet", "pspnet"]


def study(args, cwd, **kwargs) -> subprocess.Popen:
    command = [sys.executable, "-m", "facseg.study", *args]
    env = subprocess_env()
    return subprocess.Popen(command, cwd=cwd, env=env, text=True, start_new_session=True, **kwargs)


def finished(args, cwd, returncode: int = 0) -> str:
    """The study run to its end in a subprocess; its output, once its exit status is the expected one."""
    process = study(args, cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == returncode, output[-3000:]
    return output


def trials(directory, model):
    path = directory / "search" / model / "trials.json"
    return json.loads(path.read_text()) if path.is_file() else []


def test_tiny_study_tunes_each_architecture_alike_retrains_seeds_scores_ensembles_and_resumes(tmp_path, tiny_root):
    directory = tmp_path / "study"
    models = f"study.models=[{','.join(MODELS)}]"
    args = [models, "study.trials=2", "study.seeds=2", *TINY, *tiny_data(tiny_root), *FEW_CONDITIONS]
    args.append(f"hydra.sweep.dir={directory}")
    with open(tmp_path / "first.log", "w") as log:
        first = study(args, tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not [t for t in trials(directory, "unet") if t["state"] == "complete"] and first.poll() is None:
            assert time.time() < deadline, "no trial finished in 5 minutes"
            time.sleep(0.2)
        os.killpg(first.pid, signal.SIGKILL)  # killed outright, mid-search
        first.wait()
    done = [t for t in trials(directory, "unet") if t["state"] == "complete"]
    assert done, (tmp_path / "first.log").read_text()[-3000:]
    trial_dir = directory / "search" / "unet" / "trial_000"
    stamp = (trial_dir / "metrics.json").stat().st_mtime_ns

    # Resumed with the README's make target, which runs the same command.
    make = [
        "make",
        "--no-print-directory",
        "-C",
        str(ROOT),
        "study",
        f"STUDY={directory}",
        f"ARGS={' '.join(args[:-1])}",
    ]
    second = subprocess.Popen(
        make, cwd=tmp_path, env=subprocess_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = second.communicate(timeout=600)[0]
    assert second.returncode == 0, output[-4000:]
    assert "study finished in" in output
    # The finished trial was not redone; each architecture got exactly its two trials, scored on validation only.
    assert (trial_dir / "metrics.json").stat().st_mtime_ns == stamp and trials(directory, "unet")[0] == done[0]
    # The resumed search drew what the uninterrupted one drew (each architecture's sampler has the one seed).
    assert [t["params"] for t in trials(directory, "unet")] == [t["params"] for t in trials(directory, "pspnet")]
    for model in MODELS:
        record = trials(directory, model)
        assert [t["state"] for t in record] == ["complete", "complete"]
        for number in range(2):
            metrics = json.loads((directory / "search" / model / f"trial_{number:03d}" / "metrics.json").read_text())
            assert metrics["val/f1_fg"] == record[number]["value"]
            assert not any(k.startswith(("test/", "occluded/")) for k in metrics)  # the test split untouched
        assert not list((directory / "search" / model).rglob("*.ckpt"))  # a finished trial keeps its score only
    chosen = json.loads((directory / "chosen.json").read_text())
    assert set(chosen) == set(MODELS)
    for model, best in chosen.items():
        assert 3e-4 <= best["params"]["optimizer.lr"] <= 1e-2 and 0 <= best["params"]["loss.dice_weight"] <= 2
        assert best["val"] == max(t["value"] for t in trials(directory, model))
        for seed in (1, 2):  # fresh seeds, the search's was 0
            run = directory / "runs" / f"{model}-s{seed}"
            overrides = json.loads((run / "status.json").read_text())["overrides"]
            assert f"seed={seed}" in overrides and f"optimizer.lr={best['params']['optimizer.lr']!r}" in overrides
            # A finished run keeps its tested weights, not its resume state.
            assert [p.name for p in (run / "checkpoints").iterdir()] == [
                Path(json.loads((run / "metrics.json").read_text())["best_checkpoint"]).name
            ]
            with np.load(run / "per_image.npz") as arrays:
                assert arrays["test/confusion"].shape == (4, 11, 11)  # one matrix per test image
    # Each job is a W&B run of job_type `study`, grouped under the study's name; a run's test, in the study's one
    # test pass, continues the run's own W&B run (the same id), with its training config kept.
    trained, tested = sorted((directory / "runs" / "unet-s1").glob("wandb/offline-run-*/run-*.wandb"))
    for log in (trained, tested):
        assert (wandb_log.run_info(log).job_type, wandb_log.run_info(log).run_group) == ("study", "study")
    assert wandb_log.run_info(tested).run_id == wandb_log.run_info(trained).run_id
    assert "test/f1_fg" in wandb_log.summary(tested) and "trainer" in wandb_log.config(trained)
    assert "test/f1_fg" not in wandb_log.summary(trained)
    ensembles = sorted(p.name for p in (directory / "ensembles").iterdir())
    assert len(ensembles) == 2 * 2 + 2 * 2 and "unet+pspnet-s1-fitted" in ensembles  # per architecture, per seed
    fitted = json.loads((directory / "ensembles" / "unet+pspnet-s1-fitted" / "metrics.json").read_text())
    assert len(fitted["weights"]) == 2 and abs(sum(fitted["weights"]) - 1) < 1e-6
    report = (directory / "report.md").read_text()
    for row in ["| unet | 2 |", "| pspnet | 2 |", "| unet+pspnet (fitted) | 2 |"]:
        assert row in report
    assert "| unet x2 seeds (equal) | 1 |" in report and "*ceiling: truth through the crop*" in report
    assert "**unet - pspnet**, F1 per class" in report and "p (Holm)" in report
    for model in MODELS:  # each seed ensemble paired with its own architecture (and with the best one)
        assert re.search(rf"^\| {model} x2 seeds \(equal\) \| {model} \| [+-]\d", report, re.M)
    assert "## Tuning: the same budget for each architecture" in report and re.search(
        r"Time on cpu \(\d+ threads\)", report
    )
    # Each retrained run's training time, kept for the report's per-run median (a run trained in this session).
    state = json.loads((directory / "study.json").read_text())
    runs = state["runs"]
    assert sorted(runs) == sorted(f"{m}-s{s}" for m in MODELS for s in (1, 2)) and all(v > 0 for v in runs.values())
    # and the machine of each of the two sessions (the killed one and its resumption), as make bench-ref gives it
    assert [m["matmul_2048_float32_gflops"] > 1 for m in state["machines"]] == [True, True]
    assert re.search(r"matrix product at \d+(-\d+)? GFLOP/s \(make bench-ref\), measured by the 2 processes", report)
    assert re.search(r"a run's training, median minutes: unet \d+\.\d, pspnet \d+\.\d", report)
    # One precision for every run: trainer.precision=auto resolved once for both nets. Resumed in another precision
    # than its runs': refused in one line that names both, before anything runs.
    nets = [compose_train([f"model={model}"], tmp_path).model for model in MODELS]
    pinned = trainer_precision(OmegaConf.create({"precision": "auto", "accelerator": "cpu"}), nets)
    assert state["numerics"]["precision"] == pinned and state["numerics"]["torch"]
    for run in (p for p in (directory / "runs").iterdir() if p.is_dir()):  # beside them, their claim files
        assert read_provenance(run)["training"]["precision"] == read_provenance(run)["test"]["precision"] == pinned
    other = "32-true" if pinned == "bf16-mixed" else "bf16-mixed"
    refused = finished([*args, f"trainer.precision={other}"], tmp_path, returncode=1)
    said = f"its runs were made with precision {pinned}; this session would make them with precision {other}"
    assert said in refused
    assert len(json.loads((directory / "study.json").read_text())["machines"]) == 2


def test_an_architecture_whose_trials_all_fail_is_named_and_the_others_finish(tmp_path, tiny_root):
    directory = tmp_path / "study"
    args = [
        "study.models=[unet,segnet]",
        "study.trials=1",
        "study.seeds=1",
        "capacity.segnet.width=not-a-number",  # SegNet cannot be built: each of its trials fails
        *TINY,
        *tiny_data(tiny_root),
        *FEW_CONDITIONS,
        f"hydra.sweep.dir={directory}",
    ]
    output = finished(args, tmp_path, returncode=1)  # something failed, and the command says so
    assert "failed: segnet (every trial)" in output
    assert (
        trials(directory, "segnet")[0]["state"] == "failed"
        and "not-a-number" in trials(directory, "segnet")[0]["error"]
    )
    report = (directory / "report.md").read_text()
    assert "| unet | 1 |" in report and "every one of its 1 trials failed" in report
    # report_only rewrites the report from the folder, training nothing.
    (directory / "report.md").unlink()
    run_metrics = directory / "runs" / "unet-s1" / "metrics.json"
    stamp = run_metrics.stat().st_mtime_ns
    process = study([*args, "study.report_only=true"], tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 1 and "| unet | 1 |" in (directory / "report.md").read_text(), output[-3000:]
    assert len(trials(directory, "unet")) == 1 and run_metrics.stat().st_mtime_ns == stamp


def test_an_occlusion_trained_arm_is_compared_and_a_new_test_protocol_rescores_without_retraining(tmp_path, tiny_root):
    directory = tmp_path / "study"
    occluded_test = [
        "data.occluded_test.severities=[0.1]",
        "data.occluded_test.targets=null",
        "data.occluded_test.real=null",
    ]
    args = [
        "study.models=[unet]",
        "study.trials=1",
        "study.seeds=1",
        "study.ensembles=false",
        "study.arms=[clean,occluded]",
        *TINY,
        *tiny_data(tiny_root),
        *occluded_test,
        f"hydra.sweep.dir={directory}",
    ]
    finished(args, tmp_path)
    clean, occluded = directory / "runs" / "unet-s1", directory / "runs" / "unet-occl-s1"
    overrides = json.loads((occluded / "status.json").read_text())["overrides"]
    assert "data.occlusion.p=0.5" in overrides and "seed=1" in overrides  # the same seed and settings, occluders on
    assert "data.occlusion.p=0.5" not in json.loads((clean / "status.json").read_text())["overrides"]
    report = (directory / "report.md").read_text()
    assert "## Occlusion" in report and "| unet (occlusion-trained) - unet |" in report
    assert (directory / "figures" / "severity_f1.png").is_file()
    assert "occluded_severity/0.3/f1_fg" not in json.loads((clean / "metrics.json").read_text())

    # A study killed in its test pass: the run trained but untested is named, then tested by the same command.
    metrics = json.loads((occluded / "metrics.json").read_text())
    trained = {k: v for k, v in metrics.items() if not k.startswith(("test/", "occluded", "ceiling/"))}
    (occluded / "metrics.json").write_text(json.dumps(trained))
    status = json.loads((occluded / "status.json").read_text())
    (occluded / "status.json").write_text(json.dumps({k: v for k, v in status.items() if k != "test_protocol"}))
    output = finished([*args, "study.report_only=true"], tmp_path, returncode=1)
    assert "unet-occl-s1 (untested)" in output and "trained, not tested" in (directory / "report.md").read_text()
    output = finished(args, tmp_path)
    assert "Epoch" not in output and json.loads((occluded / "metrics.json").read_text()) == metrics

    # Another test protocol: study.rescore tests the kept checkpoints again, trains nothing.
    checkpoint = Path(json.loads((clean / "metrics.json").read_text())["best_checkpoint"])
    stamp = checkpoint.stat().st_mtime_ns
    rescored = [a for a in args if not a.startswith("data.occluded_test.severities")]
    rescored += ["data.occluded_test.severities=[0.1,0.3]", "study.rescore=true"]
    output = finished(rescored, tmp_path)
    for run in (clean, occluded):
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["occluded_severity/0.3/f1_fg"] is not None and metrics["val/f1_fg"] is not None
        assert "test/f1_fg" in metrics and not (run / "rescoring").exists()
    assert checkpoint.stat().st_mtime_ns == stamp and "Epoch" not in output  # tested again, not trained


def test_the_real_face_study_command_scores_ensembles_in_the_datasets_classes(tmp_path, celebamask_small):
    """The README's real-face study, tiny: the experiment preset's data reaches the ensembles' evaluation too."""
    directory = tmp_path / "real"
    args = [
        "experiment=celebamask_mini",
        f"data.root={celebamask_small}",
        "study.models=[unet,pspnet]",
        "study.trials=1",
        "study.seeds=1",
        *TINY,
        f"hydra.sweep.dir={directory}",
    ]
    finished(args, tmp_path)
    ensemble = json.loads((directory / "ensembles" / "unet+pspnet-s1-fitted" / "metrics.json").read_text())
    assert ensemble["model"] == "unet+pspnet (fitted)" and ensemble["labels"]["name"] == "celebamask"
    # Real eyeglasses and hats over the test faces; the data has no landmarks: YuNet realigns the occluded photos.
    assert ensemble["occluded_real/f1_fg"] is not None and ensemble["natural/f1_fg"] is not None
    aligned = json.loads((directory / "runs" / "unet-s1" / "confusion.json").read_text())["aligned_by"]
    assert set(aligned["occluded_realigned"]) <= {"detector", "whole image"}
    assert sum(aligned["occluded_realigned"].values()) == 4
    assert "| unet+pspnet (equal) | 1 |" in (directory / "report.md").read_text()
