"""Parallel sweep points on one machine: one device per job, never shared."""

import json
import multiprocessing
import time

import pytest

from facseg.runtime.device_pool import claim_device
from tests.helpers import FEW_CONDITIONS, TINY, run_facseg, tiny_data

pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="pip install -e '.[sweepers]'")


def hold(lock_dir, queue):
    with claim_device(2, lock_dir, poll_s=0.02) as device:
        start = time.monotonic()
        time.sleep(0.3)
        queue.put((device, start, time.monotonic()))


def test_no_device_is_ever_shared(tmp_path):
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=hold, args=(tmp_path, queue)) for _ in range(5)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    spans = [queue.get(timeout=5) for _ in workers]
    for i, (device, start, end) in enumerate(spans):
        for other_device, other_start, other_end in spans[i + 1 :]:
            if other_device == device:
                assert other_end <= start or end <= other_start  # one job at a time on a device
        holders = sum(1 for _, s, e in spans if s <= start < e)
        assert holders <= 2  # never more jobs at once than devices
    assert {device for device, _, _ in spans} == {0, 1}


@pytest.mark.slow
def test_parallel_sweep_runs_every_point(tmp_path, tiny_root):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "parallel=gpus",
        "parallel.devices=2",
        f"parallel.lock_dir={tmp_path / 'locks'}",
        "model=unet,pspnet,segnet",
        *TINY,
        *FEW_CONDITIONS,
        *tiny_data(tiny_root),
        "logger=csv",
        f"hydra.sweep.dir={sweep}",
    ]
    result = run_facseg(args, tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert sorted(j["status"] for j in summary["jobs"]) == ["ok", "ok", "ok"]
    for job in ("0_unet", "1_pspnet", "2_segnet"):
        assert "Claimed device" in (sweep / job / "run.log").read_text()
