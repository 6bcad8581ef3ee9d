"""`precision=auto`: bfloat16 where the device has it natively (the processor's flags, not its name), float32
elsewhere; the run records what it used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from facseg.models.inference import load_parser
from facseg.runtime import precision
from facseg.runtime.precision import native_bf16, trainer_precision
from facseg.runtime.record import read_provenance
from facseg.training.job import train
from tests.helpers import TINY, compose_train, tiny_data


@pytest.fixture
def flags(monkeypatch):
    """Pretend the processor has these feature flags."""

    def pretend(*names: str) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(names))

    return pretend


def trainer(precision_setting: str, accelerator: str = "cpu"):
    return OmegaConf.create({"precision": precision_setting, "accelerator": accelerator})


def test_auto_is_bf16_on_a_cpu_with_avx512_bf16_or_amx_and_float32_without(flags):
    flags("avx2", "avx512f", "avx512_bf16")
    assert trainer_precision(trainer("auto")) == "bf16-mixed"
    flags("avx2", "amx_tile", "amx_bf16")
    assert trainer_precision(trainer("auto")) == "bf16-mixed"
    flags("avx2", "avx512f", "avx512bw")  # bfloat16 emulated through float32 by oneDNN here: slower, not native
    assert trainer_precision(trainer("auto")) == "32-true" and not native_bf16("cpu")
    assert trainer_precision(trainer("32-true")) == "32-true"  # a setting other than auto, as given
    flags("avx512_bf16")
    assert trainer_precision(trainer("32-true")) == "32-true" and trainer_precision(trainer("16-mixed")) == "16-mixed"
    assert trainer_precision(trainer("auto", accelerator="mps")) == "32-true"


def test_this_processors_flags_are_read_from_proc_cpuinfo():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo on this system: auto is float32 on its CPU")
    text = Path("/proc/cpuinfo").read_text()
    has = any(f" {flag}" in text for flag in ("avx512_bf16", "amx_bf16"))
    assert native_bf16("cpu") == has
    assert trainer_precision(trainer("auto")) == ("bf16-mixed" if has else "32-true")


def test_a_run_with_precision_auto_records_the_precision_it_resolved_to(tmp_path, tiny_root, flags):
    flags("avx512_bf16")
    overrides = [*TINY, *tiny_data(tiny_root), "logger=csv", "trainer.precision=auto", "data.occluded_test=null"]
    train(compose_train(overrides, tmp_path))
    record = read_provenance(tmp_path)
    assert record["training"]["precision"] == record["test"]["precision"] == "bf16-mixed"


def test_predict_with_precision_auto_parses_in_bfloat16_only_where_native(checkpoint, flags):
    crops = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    flags("avx2")
    float32 = load_parser(checkpoint, "cpu", "32").run(crops)
    np.testing.assert_array_equal(load_parser(checkpoint, "cpu", "auto").run(crops), float32)
    flags("avx512_bf16")
    bf16 = load_parser(checkpoint, "cpu", "bf16").run(crops)
    np.testing.assert_array_equal(load_parser(checkpoint, "cpu", "auto").run(crops), bf16)
    assert not np.array_equal(bf16, float32)  # bfloat16 did run: its logits differ in their last bits
    with pytest.raises(ValueError, match="expected one of 32, bf16, 16, auto"):
        load_parser(checkpoint, "cpu", "64")
