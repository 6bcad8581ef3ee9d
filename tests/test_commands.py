"""The README's commands that the rest of the suite does not run as typed."""

import subprocess
import sys

import facseg

ROOT = facseg.PROJECT_ROOT


def make_dry_run(target: str) -> str:
    return subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_targets_run_the_documented_commands():
    assert ".venv/bin/python -m facseg.run -m model=unet,segnet,pspnet" in make_dry_run("sweep")
    assert ".venv/bin/python -m facseg.run" in make_dry_run("train")
    assert ".venv/bin/python -m facseg.evaluate" in make_dry_run("evaluate")
    assert ".venv/bin/python -m facseg.report" in make_dry_run("report")
    assert ".venv/bin/python benchmarks/bench_models.py" in make_dry_run("bench")
    assert ".venv/bin/python benchmarks/bench_gpu.py" in make_dry_run("bench-gpu")


def test_bench_data_runs_in_a_tiny_smoke_mode():
    result = subprocess.run([sys.executable, "benchmarks/bench_data.py", "--images", "8", "--image-size", "64",
                             "--workers", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("full-size", "prepared"))]
    assert len(rows) == 2 and all(float(row[-2]) > 0 for row in rows)  # images/s from JPEGs and from the cache


def test_bench_models_runs_in_a_tiny_smoke_mode(tiny_root):
    """Every code path of `make bench` (Lightning vs plain loop, the four inference variants, peak memory), tiny."""
    data = [f"data.root={tiny_root}", "data.synthetic.train=8", "data.synthetic.val=4", "data.synthetic.test=4",
            "data.synthetic.size=96", "data.synthetic.seed=1", "data.image_size=64"]  # fmt: skip
    result = subprocess.run([sys.executable, "benchmarks/bench_models.py", "--models", "segnet", "--train-model",
                             "segnet", "--capacity", "capacity.segnet_width=0.125", "--image-size", "64",
                             "--repeats", "1", "--train-batch", "4", "--infer-batch", "2",
                             "--repeats-infer", "1", "--memory-batch", "2", "--matmul-size", "128", "--data", *data],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    ratio = next(line for line in lines if line.startswith("ratio Lightning/plain"))
    assert float(ratio.split()[-1]) > 0
    variants = [line for line in lines if line.startswith("segnet ") and "GFLOP" not in line]
    names = " ".join(variants)
    assert all(v in names for v in ("eager", "channels_last", "compiled", "onnxruntime (CPU, fp32)")), names
    memory = [line.split() for line in lines if line.startswith("segnet") and len(line.split()) == 3]
    assert len(memory) == 1 and float(memory[0][2]) > 0  # peak MiB of training steps
