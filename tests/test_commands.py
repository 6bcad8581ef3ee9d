"""The README's commands that the rest of the suite does not run as typed."""

import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

import facseg
from facseg.runtime.precision import trainer_precision
from tests.helpers import FEW_CONDITIONS, TINY, compose_train, subprocess_env, tiny_data

pytestmark = pytest.mark.slow  # every test here trains nets or starts commands: `make test-all`

ROOT = facseg.PROJECT_ROOT
MAIN_JOB = ("unet", "segnet", "pspnet")
QUICK_F1 = 0.6  # mean F1 after `make quick`'s minute: it learnt (0.774 on a 2-core AMD EPYC, bf16; untrained: 0.02)


def make(target: str, args: str, cwd, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), target, f"ARGS={args}", *variables],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def bench(script: str, *args: str, timeout: int = 300) -> str:
    """A benchmark's standard output, run as `make bench*` runs it; fails with its error output."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_make_sweep_report_and_evaluate_on_tiny_data(tmp_path, tiny_root):
    """The README's make targets, really run: the main job's sweep, its report, then a checkpoint scored again."""
    sweep = tmp_path / "sweep"
    tiny = " ".join([*TINY, *tiny_data(tiny_root), "logger=csv"])
    result = make("sweep", f"{tiny} hydra.sweep.dir={sweep}", tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert [p.name for p in sorted(sweep.glob("*_*"))] == ["0_unet", "1_segnet", "2_pspnet"]
    result = make("report", str(sweep), tmp_path)
    assert result.returncode == 0 and result.stdout.strip().endswith(str(sweep / "report.md")), result.stderr[-3000:]
    assert "| pspnet | 1 |" in (sweep / "report.md").read_text()
    metrics = json.loads((sweep / "1_segnet" / "metrics.json").read_text())
    scored = tmp_path / "scored"
    data = " ".join(tiny_data(tiny_root))
    result = make("evaluate", f"ckpt_path={metrics['best_checkpoint']} {data} hydra.run.dir={scored}", tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert json.loads((scored / "metrics.json").read_text())["test/miou"] == pytest.approx(metrics["test/miou"])


def test_make_quick_trains_tests_and_reports_as_the_readme_shows(tmp_path):
    """The README's first look, as typed (its own data folder here): U-Net learns in 3 epochs and the report is
    written."""
    run = tmp_path / "quick"
    result = make("quick", f"data.root={tmp_path / 'data'}", tmp_path, f"QUICK={run}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/f1_fg"] > QUICK_F1 and metrics["occluded/f1_fg"] < metrics["test/f1_fg"]
    assert not any(key.startswith("occluded_") for key in metrics)  # the primary occluded condition only
    lines = (result.stdout + result.stderr).strip().splitlines()
    said = f"mean F1 test/f1_fg {100 * metrics['test/f1_fg']:.1f}, occluded/f1_fg {100 * metrics['occluded/f1_fg']:.1f}"
    assert any(said in line for line in lines) and result.stdout.strip().endswith(str(run / "report.md"))
    assert "## Kinds of error" in (run / "report.md").read_text()


def test_make_real_faces_runs_the_three_models_and_reports_in_celebamask_classes(tmp_path, celebamask_small):
    """`make real-faces` as documented, on 24 real faces and tiny settings: three models, one seed, a report."""
    sweep = tmp_path / "real"
    args = " ".join([*TINY, f"data.root={celebamask_small}", "logger=csv"])
    result = make("real-faces", args, tmp_path, "SEEDS=0", f"REAL_FACES={sweep}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert [p.name for p in sorted(sweep.glob("*_*"))] == ["0_unet", "1_segnet", "2_pspnet"]
    report = (sweep / "report.md").read_text()
    assert "in the `celebamask` classes" in report and "| model | skin | nose | eye_g | l_eye |" in report
    assert "| FaRL (pretrained) (published) | 89.6 |" in report


def test_bench_data_runs_in_a_tiny_smoke_mode():
    out = bench(
        "bench_data.py", "--images", "8", "--image-size", "64", "--workers", "0", "--train-size", "64", "--repeats", "1"
    )
    rows = [line.split() for line in out.splitlines() if line.startswith(("full-size", "prepared"))]
    assert len(rows) == 2 and all(float(row[-2]) > 0 for row in rows)  # images/s from JPEGs and from the cache
    assert "training on cpu, 64 px crops from the cache, batch 8: auto = 0 workers" in out
    assert re.search(r"^\s+0\s+[\d.]+\s+\([\d.]+\)\s+\(auto\)$", out, re.M), out  # trained with the device's own choice


def test_bench_test_splits_each_loaders_time_in_a_tiny_smoke_mode(tiny_root):
    overrides = [*tiny_data(tiny_root), "data.image_size=64"]
    out = bench("bench_test.py", "--batches", "1", *overrides)
    passes = r"clean only:\n(.*\n)+  1 test loaders, .*\nevery condition:\n(.*\n)+  1[01] test loaders"
    assert re.search(passes, out), out
    # each loader's seconds (loading, forward, scoring), their ratio and the peak resident memory while it ran
    peak = re.search(r"occluded_target/eyes\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)$", out, re.M)
    assert peak and 0.3 < float(peak.group(1)) < 8, out
    assert "every condition / clean only" in out


def test_bench_predict_parses_photos_of_1_to_17_megapixels_in_a_smoke_mode():
    out = bench("bench_predict.py", "--photos", "2")
    assert re.search(r"2 photos of 1\.0 to 2\.0 MP .*: [\d.]+ photos/s", out), out
    assert re.search(r"parse and warp back\s+[\d.]+ s", out), out


def test_bench_ensembles_scores_alike_in_one_pass_and_one_pass_each_in_a_tiny_smoke_mode(tiny_root):
    overrides = [*tiny_data(tiny_root), *FEW_CONDITIONS, "data.image_size=64"]
    out = bench("bench_ensembles.py", "--seeds", "1", "--batches", "1", *overrides)
    assert "8 ensembles of 3 checkpoints" in out, out
    assert "the same mean F1 both ways: True" in out and "ratio" in out


def test_bench_models_runs_in_a_tiny_smoke_mode(tiny_root):
    """Every code path of `make bench` (Lightning vs plain loop, the four inference variants, peak memory, NCHW vs
    channels_last steps), tiny."""
    data = [
        f"data.root={tiny_root}",
        "data.synthetic.train=8",
        "data.synthetic.val=4",
        "data.synthetic.test=4",
        "data.synthetic.size=96",
        "data.synthetic.seed=1",
        "data.image_size=64",
    ]
    out = bench(
        "bench_models.py",
        "--models",
        "segnet",
        "--train-model",
        "segnet",
        "--capacity",
        "capacity.segnet.width=0.125",
        "--image-size",
        "64",
        "--repeats",
        "1",
        "--train-batch",
        "4",
        "--infer-batch",
        "2",
        "--repeats-infer",
        "1",
        "--memory-batch",
        "2",
        "--matmul-size",
        "128",
        "--step-size",
        "64",
        "--steps",
        "1",
        "--data",
        *data,
        timeout=600,
    )
    lines = out.splitlines()
    ratio = next(line for line in lines if line.startswith("ratio Lightning/plain"))
    assert float(ratio.split()[-1]) > 0
    variants = [line for line in lines if line.startswith("segnet ") and "GFLOP" not in line]
    names = " ".join(variants)
    assert all(v in names for v in ("eager", "channels_last", "compiled", "onnxruntime (CPU, fp32)")), names
    memory = [line.split() for line in lines if line.startswith("segnet") and len(line.split()) == 3]
    assert len(memory) == 1 and float(memory[0][2]) > 0  # peak MiB of training steps
    steps = [line.split() for line in lines if line.startswith("segnet") and len(line.split()) == 4]
    assert len(steps) == 1 and all(float(v) > 0 for v in steps[0][1:])  # NCHW and NHWC seconds, their ratio


def test_bench_precision_runs_in_a_tiny_smoke_mode(tiny_root):
    """float32 against bfloat16: steps and inference per net, then an epoch of `facseg.run` in each, tiny."""
    out = bench(
        "bench_precision.py",
        *("--models", "segnet", "--capacity", "capacity.segnet.width=0.125", "--sizes", "64", "--repeats", "1"),
        *("--train-batch", "4", "--infer-batch", "2", "--steps", "1", "--repeats-infer", "1"),
        *("--data", *tiny_data(tiny_root), "data.image_size=64", *FEW_CONDITIONS),
    )
    rows = [line.split() for line in out.splitlines() if line.startswith("segnet")]
    assert len(rows) == 1 and len(rows[0]) == 8 and all(float(v) > 0 for v in rows[0][1:])  # step, inference
    assert re.search(r"^float32 [\d.]+ s, bf16-mixed [\d.]+ s: [\d.]+x$", out, re.M), out  # an epoch of `facseg.run`


def test_bench_budget_times_the_main_job_in_each_precision_in_reference_epochs(tiny_root, tmp_path):
    tiny = [*TINY, *tiny_data(tiny_root), *FEW_CONDITIONS]
    cpu = OmegaConf.create({"precision": "auto", "accelerator": "cpu"})
    auto = [(m, trainer_precision(cpu, [compose_train([f"model={m}"], tmp_path).model])) for m in MAIN_JOB]
    out = bench("bench_budget.py", "--steps", "1", "--data", *tiny)
    assert re.search(r"^reference epoch: [\d.]+ s \(before the jobs [\d.]+ s, after [\d.]+ s\)$", out, re.M), out
    blocks = out.split("\nmain job ")[1:]
    assert len(blocks) == 2 and blocks[1].startswith(shlex.join([*tiny, "trainer.precision=32-true"]))
    for block, expected in zip(blocks, (auto, [(m, "32-true") for m in MAIN_JOB])):  # auto: each net's own
        assert re.search(r"^  \d+ s = [\d.]+ reference epochs$", block, re.M), block
        jobs = re.findall(r"^  (\w+) +(\S+) +training +[\d.]+ s  test +[\d.]+ s$", block, re.M)
        assert jobs == expected, block
    assert re.search(r"^\(defaults\) / trainer.precision=32-true: [\d.]+x$", out, re.M)


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("facseg.run", ["data=lapa"], "data=lapa has no folder: give data.root=/path/to/it, or set paths.lapa"),
        ("facseg.run", ["data.labels=celebamask"], "a class set is a config group, chosen with a slash: data/labels"),
        ("facseg.run", ["model=segnet", "model.encoder_weights=imagenet"], "add capacity=paper"),
        ("facseg.evaluate", ["ckpt_path=nowhere.ckpt"], "nowhere.ckpt: no such checkpoint"),
        ("facseg.report", ["empty"], "holds no jobs"),
    ],
)
def test_a_mistake_gets_a_line_that_says_what_to_do_and_leaves_no_run_behind(tmp_path, module, args, message):
    (tmp_path / "empty").mkdir()
    env = {**subprocess_env(), "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", module, *args]
    if module != "facseg.report":
        command.append(f"hydra.run.dir={tmp_path / 'run'}")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    if module == "facseg.evaluate":
        assert not (tmp_path / "run").exists()  # nothing was scored: no run folder
    if module == "facseg.run":
        assert not list(tmp_path.rglob("wandb"))  # it failed before training: no W&B run


def test_bench_ref_prints_this_machines_speed(tmp_path):
    result = make("bench-ref", "", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    assert found["matmul_2048_float32_gflops"] > 1 and found["cores"] >= 1
    assert 0 < found["unet_train_step_s"] < 60  # a real step of the default net was timed
    # the reference epoch: 100 steps of U-Net-ResNet-18 (issue 42: 54 s on a 2-core AMD EPYC)
    assert 100 * found["unet_train_step_s"] / 20 < found["reference_epoch_s"] < 100 * found["unet_train_step_s"] * 20
    assert "a reference epoch (100 steps of SMP's U-Net-ResNet-18, 128 px, batch 8, float32): " in result.stdout


def test_make_precision_check_pairs_each_seeds_runs_in_both_precisions_and_goes_on_where_it_stopped(
    tmp_path, tiny_root
):
    """`make precision-check` on tiny settings: one net, two seeds, each in float32 and bf16; run again, it trains
    nothing more and writes the same verdict."""
    sweep = tmp_path / "precision"
    args = " ".join([*TINY, *tiny_data(tiny_root), *FEW_CONDITIONS, "logger=csv"])
    variables = (f"PRECISION={sweep}", "PRECISION_MODELS=unet", "PRECISION_SEEDS=0,1")
    result = make("precision-check", args, tmp_path, *variables)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = json.loads((sweep / "precision.json").read_text())
    assert list(found) == ["unet"] and found["unet"]["seeds"] == [0, 1] and "occluded" in found["unet"]
    assert "| unet | 2 |" in (sweep / "precision.md").read_text()
    stamps = {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")}
    assert len(stamps) == 4
    again = make("precision-check", args, tmp_path, *variables)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert (again.stdout + again.stderr).count("finished before: left as it is (skip_done=true)") == 4
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")} == stamps
    assert json.loads((sweep / "precision.json").read_text()) == found
    # Run again with other settings into the same folder: refused, each finished run left as it was.
    other = make("precision-check", f"{args} trainer.max_epochs=2", tmp_path, *variables)
    assert other.returncode != 0 and "holds a finished run of [" in other.stdout + other.stderr
    assert {p: p.stat().st_mtime_ns for p in sweep.glob("*/metrics.json")} == stamps


def test_lapa_copy_writes_real_faces_in_lapas_layout_and_classes(tmp_path, celebamask_small):
    """benchmarks/lapa_copy.py as typed: the real faces in LaPa's layout, read by data=lapa's own reader."""
    from facseg.data.formats import split_files
    from facseg.data.labels import LabelMap

    out = tmp_path / "lapa"
    printed = bench("lapa_copy.py", str(celebamask_small), str(out))
    assert printed.strip() == f"{out}: 16 train, 4 val, 4 test photos in LaPa's layout"
    lapa = LabelMap.named("lapa")
    files = split_files(out, "test", len(lapa))
    image, label = files.read(0)
    assert image.shape[:2] == label.shape == (512, 512) and label.max() < len(lapa)
    eyes = [lapa.names.index(n) for n in ("left_eye", "right_eye")]
    columns = [np.nonzero(label == eye)[1].mean() for eye in eyes]
    assert columns[0] < columns[1]  # LaPa's left eye is the image's left
