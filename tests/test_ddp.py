"""DDP with 2 gloo processes on the CPU: single runs and sweeps, compared with a single process."""

import json

import pytest
import pytorch_lightning as pl

from facseg.data.datamodule import FaceDataModule
from facseg.data.synthetic import SyntheticSpec, generate
from facseg.models.module import FaceSegModule
from facseg.scoring import evaluator
from tests import wandb_log
from tests.helpers import FEW_CONDITIONS, run_facseg, same_number

pytestmark = pytest.mark.slow  # every test here trains nets or starts commands: `make test-all`

# 5 test and 3 val images: 2 processes with padding would score one image of each twice.
SPEC = SyntheticSpec(train=8, val=3, test=5, size=96, seed=1)
DDP = [
    "trainer=ddp",
    "trainer.devices=2",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",  # as single_process_test scores
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.image_size=64",
    "data.batch_size=2",
]


@pytest.fixture(scope="module")
def odd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd") / "set"
    generate(root, SPEC)
    return root


def data_args(root):
    spec = {k: "null" if v is None else v for k, v in SPEC.__dict__.items()}
    return [f"data.root={root}", *(f"data.synthetic.{k}={v}" for k, v in spec.items())]


def run(args, cwd):
    result = run_facseg(args, cwd)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def single_process_test(run_dir, root) -> dict:
    """The run's best checkpoint scored by one process on the same test split."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    module = FaceSegModule.load_from_checkpoint(metrics["best_checkpoint"], weights_only=True)
    # The occluded split as conf/data/lapa.yaml sets it: its shards are pooled too.
    datamodule = FaceDataModule(root=str(root), image_size=64, batch_size=2, occluded_test={"coverage": 0.2})
    scoring = evaluator.TestEvaluator()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, callbacks=[scoring])
    trainer.test(module, datamodule=datamodule, verbose=False)
    metrics = {k: float(v) for k, v in scoring.results.items() if not k.endswith("/loss")}
    assert "occluded/inside/pixel_acc" in metrics
    return metrics


def assert_same_test_metrics(run_dir, root):
    ddp = json.loads((run_dir / "metrics.json").read_text())
    for key, value in single_process_test(run_dir, root).items():
        assert ddp[key] == same_number(key, value), key


def assert_one_of_each(job_dir):
    assert len(list(job_dir.glob("wandb/offline-run-*"))) == 1
    assert len(list(job_dir.glob("csv/metrics.csv"))) == 1
    assert (job_dir / "metrics.json").is_file() and json.loads((job_dir / "status.json").read_text())["status"] == "ok"


def test_single_ddp_run(tmp_path, odd_root):
    run_dir = tmp_path / "run"
    result = run([*DDP, *data_args(odd_root), f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert (
        "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2"
        in result.stdout + result.stderr + (run_dir / "rank1.log").read_text()
    )
    assert "SyncBatchNorm runs on GPUs only" in (run_dir / "run.log").read_text()  # trainer=ddp asks for it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray directory from rank 1
    assert_one_of_each(run_dir)
    assert_same_test_metrics(run_dir, odd_root)


def test_ddp_inside_a_sweep_runs_each_job_once(tmp_path, odd_root):
    sweep = tmp_path / "sweep"
    # The single run above tests every default condition under DDP; here the shards single_process_test scores.
    args = ["-m", "model=unet,pspnet", *DDP, *FEW_CONDITIONS, *data_args(odd_root), f"hydra.sweep.dir={sweep}"]
    run(args, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0_unet", "1_pspnet"]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["ok", "ok"]
    for job, model in zip(jobs, ("unet", "pspnet")):
        assert_one_of_each(job)
        (wandb_run,) = job.glob("wandb/offline-run-*/run-*.wandb")
        assert wandb_log.run_info(wandb_run).display_name == f"{model}-s0"
        assert not list(job.glob("*/multirun.yaml")) and (job / "rank1.log").is_file()
        assert_same_test_metrics(job, odd_root)
