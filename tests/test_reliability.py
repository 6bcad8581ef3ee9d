"""Interruption and resume, sweeps with a failing job, guards, secrets: each in a real run."""

import csv
import json
import signal
import subprocess
import sys

import pytest
import torch

from facseg.runtime.atomic import write_json
from facseg.runtime.record import read_provenance
from facseg.training.config_checks import ConfigError
from facseg.training.job import train
from tests import wandb_log
from tests.helpers import FEW_CONDITIONS, TINY, compose_train, run_facseg, subprocess_env, tiny_data

# Three epochs of two batches: step 3 is the middle of the second epoch.
RESUMABLE = [*TINY, *FEW_CONDITIONS, "trainer.max_epochs=3", "trainer.limit_train_batches=1.0"]


def final_metrics(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k != "best_checkpoint"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_root):
    """The final metrics of the run never interrupted, in a precision (each made once)."""
    made = {}

    def metrics(precision: str = "32-true") -> dict:
        if precision not in made:
            run_dir = tmp_path_factory.mktemp("uninterrupted")
            args = [*RESUMABLE, *tiny_data(tiny_root), f"trainer.precision={precision}", f"hydra.run.dir={run_dir}"]
            result = run_facseg(args, cwd=run_dir)
            assert result.returncode == 0, result.stderr[-3000:]
            made[precision] = final_metrics(run_dir)
        return made[precision]

    return metrics


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, precision",
    [(signal.SIGKILL, "32-true"), (signal.SIGTERM, "32-true"), (signal.SIGKILL, "bf16-mixed")],
    ids=["SIGKILL", "SIGTERM", "SIGKILL-bf16"],
)
def test_interrupted_run_resumes_to_the_same_metrics(tmp_path, tiny_root, uninterrupted, sig, precision):
    """Killed, or stopped by SIGTERM, then the same command again: the metrics of the run never interrupted. In
    bfloat16 too, which also shows that two processes compute the same bf16 run alike (the killed one's first epoch
    is the checkpoint the resumed one continues from)."""
    run_dir = tmp_path / "run"
    command = [
        *RESUMABLE,
        *tiny_data(tiny_root),
        f"trainer.precision={precision}",
        f"hydra.run.dir={run_dir}",
        "+callbacks.interrupt._target_=tests.helpers.Interrupt",
        "+callbacks.interrupt.step=3",
        f"+callbacks.interrupt.signal={int(sig)}",
        f"+callbacks.interrupt.marker={tmp_path / 'interrupted'}",
    ]
    first = run_facseg(command, cwd=tmp_path)
    assert (tmp_path / "interrupted").is_file()
    assert not (run_dir / "metrics.json").exists()
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    if sig == signal.SIGKILL:
        assert first.returncode == -signal.SIGKILL
        assert last["global_step"] == 2  # the end of the first epoch: the kill lost half an epoch
    else:
        assert first.returncode == 0, first.stderr[-3000:]  # a clean exit, as SLURM expects
        assert last["global_step"] == 3 and last["exact_resume"]["batches_done"] == 1  # saved mid-epoch
    second = run_facseg(command, cwd=tmp_path)  # the same command again
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming from" in second.stdout + second.stderr + (run_dir / "run.log").read_text()
    assert final_metrics(run_dir) == uninterrupted(precision)
    # The run's training time counts the killed session's up to its checkpoint, not the resumed session's alone.
    assert read_provenance(run_dir)["training"]["seconds"] > last["training_seconds"] > 0
    # Nothing logged before the interruption is lost: the CSV holds every epoch's validation.
    with (run_dir / "csv" / "metrics.csv").open() as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("val/miou")}
    assert epochs == {"0", "1", "2"}
    # Both processes wrote to the same W&B run id, one offline folder each (README: sync the second with --append).
    runs = sorted(run_dir.glob("wandb/offline-run-*"))
    assert len(runs) == 2 and len({p.name.rsplit("-", 1)[1] for p in runs}) == 1


@pytest.mark.slow
def test_sigterm_to_the_process_group_saves_mid_epoch_and_ends_the_sweep(tmp_path, tiny_root):
    """SLURM's pre-emption and `timeout` signal every process of the job: the DataLoader workers die too, and their
    death may reach the trainer before its own SIGTERM handling. The run still saves where it stopped, and the
    sweep ends there instead of starting its next job (measured before: a lost half epoch, and the next job run)."""
    sweep = tmp_path / "sweep"
    command = [
        "-m",
        *RESUMABLE,
        *tiny_data(tiny_root),
        "logger=csv",
        "data.num_workers=2",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        "+callbacks.interrupt._target_=tests.helpers.Interrupt",
        "+callbacks.interrupt.step=3",
        f"+callbacks.interrupt.signal={int(signal.SIGTERM)}",
        "+callbacks.interrupt.group=true",
        f"+callbacks.interrupt.marker={tmp_path / 'interrupted'}",
    ]
    result = run_facseg(command, cwd=tmp_path, start_new_session=True)  # its own group: the signal spares pytest
    assert (tmp_path / "interrupted").is_file(), result.stderr[-3000:]
    last = torch.load(sweep / "0_unet" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3 and last["exact_resume"]["batches_done"] == 1  # saved mid-epoch
    assert not (sweep / "1_unet").exists()  # the sweep ended with the interrupted job


@pytest.mark.slow
def test_usr2_through_the_submitit_launcher_saves_requeues_and_resumes_exactly(tmp_path, tiny_root, uninterrupted):
    """submitit (SLURM, and its local executor here) signals USR2 before a job's time limit and requeues the job:
    the run saves last.ckpt where it stopped, the requeued job resumes from it, and ends as an uninterrupted run."""
    sweep = tmp_path / "sweep"
    command = [
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.launcher.submitit_folder={tmp_path / 'submitit'}",
        *RESUMABLE,
        *tiny_data(tiny_root),
        f"hydra.sweep.dir={sweep}",
        "trainer.precision=32-true",  # as uninterrupted()
        "+callbacks.interrupt._target_=tests.helpers.Interrupt",
        "+callbacks.interrupt.step=3",
        f"+callbacks.interrupt.signal={int(signal.SIGUSR2)}",
        f"+callbacks.interrupt.marker={tmp_path / 'interrupted'}",
    ]
    result = run_facseg(command, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "interrupted").is_file()
    logs = "".join(p.read_text() for p in sorted((tmp_path / "submitit").rglob("*_log.*")))
    assert "Requeued job" in logs, logs[-3000:]  # submitit's own handler ran, after the save
    run_log = (sweep / "0_unet" / "run.log").read_text()
    assert "USR2: saved" in run_log and "step 3" in run_log and "Resuming from" in run_log
    assert final_metrics(sweep / "0_unet") == uninterrupted()


@pytest.mark.slow
def test_sweep_with_a_failing_job_finishes_the_others_and_fails(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    result = run_facseg(
        [
            "-m",
            *TINY,
            *FEW_CONDITIONS,
            *tiny_data(tiny_root),
            "logger=csv",
            "data.image_size=64,100,64",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode != 0
    summary = json.loads((sweep / "summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["ok", "failed", "ok"]
    assert summary["failed"] == ["1_unet"]
    failed = summary["jobs"][1]
    assert "data.image_size=100 must be a multiple of 32" in failed["error"] and failed["metrics"] is None
    assert "data.image_size=100" in failed["overrides"]
    assert all((sweep / j / "metrics.json").is_file() for j in ("0_unet", "2_unet"))
    assert "1_unet" in result.stdout + result.stderr


def test_a_resumed_runs_training_seconds_include_its_earlier_sessions(tmp_path, tiny_root):
    overrides = [*TINY, *tiny_data(tiny_root), "logger=csv", "test=false"]
    train(compose_train([*overrides, "trainer.max_epochs=3"], tmp_path))
    earlier = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["training_seconds"]
    assert 0 < earlier <= read_provenance(tmp_path)["training"]["seconds"] + 0.05  # saved as the last epoch ended
    train(compose_train([*overrides, "trainer.max_epochs=4"], tmp_path))  # resumed from last.ckpt: one epoch more
    assert read_provenance(tmp_path)["training"]["seconds"] > round(earlier, 1)  # not the last epoch's alone


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.image_size=100", r"data.image_size=100 must be a multiple of 32.*; try 96"),
        ("model.arch=nosuchnet", r"model.arch=nosuchnet is unknown; available: .*segnet"),
        ("optimized_metric=test/miou", r"optimized_metric=test/miou: .* never on test"),
        ("data.batch_size=1", r"data.batch_size=1: training BatchNorm needs at least 2"),
    ],
)
def test_guards_fail_before_training_and_name_the_key(tmp_path, tiny_root, override, message):
    cfg = compose_train([*TINY, *tiny_data(tiny_root), "logger=csv", override], tmp_path)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_non_finite_loss_stops_the_run_naming_the_step(tmp_path, tiny_root):
    cfg = compose_train(
        [*TINY, *tiny_data(tiny_root), "logger=csv", "optimizer.lr=1e30", "scheduler.warmup_fraction=0"], tmp_path
    )
    with pytest.raises(FloatingPointError, match=r"non-finite training loss at epoch 0, step [01]:"):
        train(cfg)


@pytest.mark.slow
def test_no_secret_from_the_environment_lands_in_any_file(tmp_path, tiny_root):
    secrets = {"WANDB_API_KEY": "fake0wandb0key0123456789", "HF_TOKEN": "hf_fake0token0abcdef"}
    run_dir = tmp_path / "run"
    env = {**subprocess_env(), **secrets}
    # A config that pulls a token from the environment: the resolved value must not be logged anywhere.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facseg.run",
            *TINY,
            *tiny_data(tiny_root),
            f"hydra.run.dir={run_dir}",
            "+extra.note=${oc.env:HF_TOKEN}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wandb_run,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    assert wandb_log.config(wandb_run)["extra"] == {"note": "<redacted>"}  # logged, but not its value
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    leaks = [str(p) for p in files if any(s.encode() in p.read_bytes() for s in secrets.values())]
    assert not leaks


def test_result_files_are_replaced_whole(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"test/miou": 0.5})
    with pytest.raises(ValueError):
        write_json(path, {"test/miou": float("nan")})  # not JSON: nothing may be half-written
    assert json.loads(path.read_text()) == {"test/miou": 0.5}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.slow
def test_explicit_checkpoint_resumes_another_directory(tmp_path, tiny_root):
    base = [*TINY, *FEW_CONDITIONS, *tiny_data(tiny_root), "logger=csv", "trainer.limit_train_batches=1.0"]
    train(compose_train(base, tmp_path / "first"))  # one epoch
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    train(compose_train([*base, f"ckpt_path={last}", "trainer.max_epochs=2"], tmp_path / "second"))
    resumed = torch.load(tmp_path / "second" / "checkpoints" / "last.ckpt", weights_only=True)
    assert (resumed["epoch"], resumed["global_step"]) == (1, 4)  # continued: 2 epochs of 2 batches in all
    with pytest.raises(FileNotFoundError, match="ckpt_path=.*nowhere.ckpt: no such checkpoint"):
        train(compose_train([*base, f"ckpt_path={tmp_path / 'nowhere.ckpt'}"], tmp_path / "third"))
