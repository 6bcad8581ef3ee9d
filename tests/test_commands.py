"""The README's commands that the rest of the suite does not run as typed."""

import subprocess
import sys

import facseg

ROOT = facseg.PROJECT_ROOT


def make_dry_run(target: str) -> str:
    return subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_make_sweep_and_train_run_the_main_job():
    assert ".venv/bin/python -m facseg.run -m model=unet,segnet,pspnet" in make_dry_run("sweep")
    assert ".venv/bin/python -m facseg.run" in make_dry_run("train")
    assert ".venv/bin/python -m facseg.evaluate" in make_dry_run("evaluate")


def test_bench_data_runs_in_a_tiny_smoke_mode():
    result = subprocess.run([sys.executable, "benchmarks/bench_data.py", "--images", "8", "--image-size", "64",
                             "--workers", "0"], cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("full-size", "prepared"))]
    assert len(rows) == 2 and all(float(row[-2]) > 0 for row in rows)  # images/s from JPEGs and from the cache
