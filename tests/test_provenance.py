"""Every run's record says what produced it (provenance.json), and the report says it once and names the runs that
differ."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

import torch

import facseg
from facseg.report.acceptance import compare
from facseg.report.provenance import provenance_section
from facseg.report.runs import Job
from facseg.runtime.precision import native_bf16
from facseg.runtime.provenance import PACKAGES, cpu_family
from facseg.runtime.record import read_provenance


def test_a_trained_and_tested_run_records_what_produced_it(checkpoint):
    record = read_provenance(Path(checkpoint).parents[1])  # the run folder of the tiny trained U-Net
    assert set(record) == {"training", "test"}
    for stage in record.values():
        assert stage["packages"] == {name: metadata.version(name) for name in PACKAGES}
        lock = (facseg.PROJECT_ROOT / "requirements.lock").read_bytes()
        assert stage["lock"] == hashlib.sha256(lock).hexdigest()[:16]
        assert stage["precision"] == ("bf16-mixed" if native_bf16("cpu") else "32-true")  # auto, U-Net allows bf16
        assert stage["device"]["cpu_kernels"] == torch.backends.cpu.get_cpu_capability()
        assert stage["device"]["cpu_family"] == cpu_family()
        assert cpu_family().endswith(f"-{torch.backends.cpu.get_cpu_capability()}")
        assert stage["device"]["gpu"] is None and stage["device"]["cpu"]
        assert stage["matmul_1024_gflops"] > 0 and stage["seconds"] > 0


def job(name: str, numpy: str, cpu: str = "AMD EPYC", seconds: float = 60.0) -> Job:
    stage = {
        "packages": {"torch": "2.14.1", "numpy": numpy},
        "lock": "0123456789abcdef",
        "precision": "32-true",
        "device": {"cpu": cpu, "cpu_kernels": "AVX512", "gpu": None},
        "matmul_1024_gflops": 150.0,
        "seconds": seconds,
    }
    return Job(name, Path(name), "ok", "unet", metrics={"model": "unet"}, provenance={"training": stage})


def test_the_report_says_the_shared_settings_once_and_names_the_runs_that_differ():
    jobs = [job("unet-s1", "2.4.6"), job("unet-s2", "2.4.6", seconds=90), job("unet-s3", "2.5.0", cpu="Intel Xeon")]
    section = provenance_section([*jobs, Job("old", Path("old"), "ok", "unet", metrics={"model": "unet"})])
    assert "**Training** (3 of 4 runs recorded it): lock 0123456789abcdef, precision 32-true, torch 2.14.1" in section
    assert "numpy 2.4.6" in section and "device cpu AMD EPYC" in section and "60-90 s a run" in section
    assert "| unet-s3 | numpy | 2.5.0 | 2.4.6 |" in section
    assert "| unet-s3 | device cpu | Intel Xeon | AMD EPYC |" in section
    assert "unet-s1 |" not in section and "unet-s2 |" not in section  # a slower run is not flagged
    assert "Recorded before provenance was kept (unknown): old." in section
    assert provenance_section(jobs[:2]).count("differs") == 0
    assert provenance_section([Job("old", Path("old"), "ok", "unet", metrics={"model": "unet"})]) == ""


def acceptance_record(miou: float = 0.8123456789, lock: str = "0123456789abcdef", threads: int = 2) -> dict:
    numbers = {"test/miou": miou, "test/f1_fg": 0.9, "occluded/f1_fg": 0.7}
    return {
        "family": "AuthenticAMD-25-AVX512",
        "cpu": "AMD EPYC",
        "torch_threads": threads,
        "lock": lock,
        "packages": {"torch": "2.14.1", "numpy": "2.4.6" if lock == "0123456789abcdef" else "2.5.0"},
        "precision": {"unet": "bf16-mixed", "segnet": "32-true", "pspnet": "bf16-mixed"},
        "numbers": {model: dict(numbers) for model in ("unet", "segnet", "pspnet")},
    }


def test_acceptance_fails_on_one_digit_within_the_promise_and_names_what_differs_outside_it():
    holds, text = compare(acceptance_record(), acceptance_record())
    assert holds and "in all 9 numbers" in text
    one_digit = acceptance_record()
    one_digit["numbers"]["unet"]["test/miou"] = 0.8123456788
    holds, text = compare(one_digit, acceptance_record())
    assert not holds and "1 of 9 numbers differ" in text
    assert "unet test/miou: 0.8123456789 recorded, 0.8123456788 here" in text
    # Another lock, or another thread count: the differences named, the promise not broken.
    holds, text = compare(acceptance_record(miou=0.7, lock="fedcba9876543210"), acceptance_record())
    assert holds and "(outside the promise)" in text
    assert (
        "lock: '0123456789abcdef' recorded, 'fedcba9876543210' here" in text
        and "numpy: 2.4.6 recorded, 2.5.0 here" in text
    )
    holds, text = compare(acceptance_record(miou=0.7, threads=4), acceptance_record())
    assert holds and "torch_threads: 2 recorded, 4 here" in text
    holds, text = compare(acceptance_record(), None)
    assert holds and "no record for this CPU family (AuthenticAMD-25-AVX512" in text
