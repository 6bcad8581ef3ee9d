"""`precision=auto`: bfloat16 where the device has it natively (the processor's flags, not its name) and the net
kept its accuracy in it (`model.auto_bf16`), float32 elsewhere; nets scored or compared together share one; the run
records what it used, and a rescoring or a prediction computes in it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import facseg
from facseg.evaluate import evaluate
from facseg.models.inference import load_parser
from facseg.runtime import precision
from facseg.runtime.precision import native_bf16, scoring_precision, trainer_precision
from facseg.runtime.record import read_provenance
from facseg.study.jobs import StudyJobs
from facseg.study.plan import StudyPlan
from facseg.training.job import train
from tests.helpers import CONF_DIR, TINY, compose_evaluate, compose_train, tiny_data


@pytest.fixture
def flags(monkeypatch):
    """Pretend the processor has these feature flags."""

    def pretend(*names: str) -> None:
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(names))

    return pretend


ALLOWED = [{"name": "unet", "auto_bf16": True}]  # a net shown to keep its accuracy in bf16


def trainer(precision_setting: str, accelerator: str = "cpu"):
    return OmegaConf.create({"precision": precision_setting, "accelerator": accelerator})


def test_auto_is_bf16_on_a_cpu_with_avx512_bf16_or_amx_and_float32_without(flags):
    flags("avx2", "avx512f", "avx512_bf16")
    assert trainer_precision(trainer("auto"), ALLOWED) == "bf16-mixed"
    flags("avx2", "amx_tile", "amx_bf16")
    assert trainer_precision(trainer("auto"), ALLOWED) == "bf16-mixed"
    flags("avx2", "avx512f", "avx512bw")  # bfloat16 emulated through float32 by oneDNN here: slower, not native
    assert trainer_precision(trainer("auto"), ALLOWED) == "32-true" and not native_bf16("cpu")
    assert trainer_precision(trainer("32-true"), ALLOWED) == "32-true"  # a setting other than auto, as given
    flags("avx512_bf16")
    assert (
        trainer_precision(trainer("32-true"), ALLOWED) == "32-true"
        and trainer_precision(trainer("16-mixed"), ALLOWED) == "16-mixed"
    )
    assert trainer_precision(trainer("auto", accelerator="mps"), ALLOWED) == "32-true"


def test_auto_is_bf16_only_for_nets_shown_to_keep_their_accuracy_and_sets_made_only_of_them(flags):
    flags("avx512_bf16")
    kept, lost = {"name": "unet", "auto_bf16": True}, {"name": "segnet", "auto_bf16": False}
    assert trainer_precision(trainer("auto"), [kept]) == "bf16-mixed"
    assert trainer_precision(trainer("auto"), [lost]) == trainer_precision(trainer("auto"), [{}]) == "32-true"
    assert trainer_precision(trainer("auto"), [kept, lost]) == "32-true"  # an ensemble or study: one precision
    assert trainer_precision(trainer("bf16-mixed"), [lost]) == "bf16-mixed"  # asked for by name: as given


def test_the_nets_auto_may_run_in_bf16_are_those_the_committed_precision_check_kept(tmp_path):
    """Each net's `auto_bf16` is what experiments/precision says: true only with the check's verdict."""
    found = json.loads((facseg.PROJECT_ROOT / "experiments" / "precision" / "precision.json").read_text())
    for model in ("unet", "segnet", "pspnet", "hybrid", "deeplabv3plus"):
        kept = found.get(model, {}).get("bf16_keeps", False)
        assert compose_train([f"model={model}"], tmp_path).model.auto_bf16 == kept, model
    assert found["unet"]["bf16_keeps"]  # the default net: what the main job's default runs in bf16 rests on


def test_this_processors_flags_are_read_from_proc_cpuinfo():
    if not Path("/proc/cpuinfo").is_file():
        pytest.skip("no /proc/cpuinfo on this system: auto is float32 on its CPU")
    text = Path("/proc/cpuinfo").read_text()
    has = any(f" {flag}" in text for flag in ("avx512_bf16", "amx_bf16"))
    assert native_bf16("cpu") == has
    assert trainer_precision(trainer("auto"), ALLOWED) == ("bf16-mixed" if has else "32-true")


def test_a_rescoring_under_auto_computes_in_the_precision_its_checkpoints_were_trained_in(flags):
    flags("avx512_bf16")
    assert scoring_precision("auto", "cpu", ["bf16-mixed"]) == "bf16-mixed"
    assert scoring_precision("auto", "cpu", ["32-true"]) == scoring_precision("auto", "cpu", [None]) == "32-true"
    assert scoring_precision("auto", "cpu", ["bf16-mixed", "32-true"]) == "32-true"  # an ensemble: one precision
    assert scoring_precision("auto", "cpu", ["16-mixed"]) == "32-true"
    assert scoring_precision("32-true", "cpu", ["bf16-mixed"]) == "32-true"  # asked for by name: as given
    assert scoring_precision("bf16-mixed", "cpu", [None]) == "bf16-mixed"
    flags("avx2")  # bfloat16 would be emulated: float32, whatever the checkpoint was trained in
    assert scoring_precision("auto", "cpu", ["bf16-mixed"]) == "32-true"


@pytest.mark.parametrize(("auto_bf16", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_a_run_with_precision_auto_records_what_it_resolved_to(tmp_path, tiny_root, flags, auto_bf16, expected):
    """In provenance.json and in its checkpoints, which facseg.evaluate's `auto` follows: the rescoring is the run's
    test, whatever the net's `auto_bf16` says today."""
    flags("avx512_bf16")
    data = [*tiny_data(tiny_root), "data.occluded_test=null"]
    train(compose_train([*TINY, *data, "logger=csv", f"model.auto_bf16={auto_bf16}"], tmp_path / "run"))
    record = read_provenance(tmp_path / "run")
    assert record["training"]["precision"] == record["test"]["precision"] == expected
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())
    saved = torch.load(trained["best_checkpoint"], map_location="cpu", weights_only=False)
    assert saved["trained_with"] == {"precision": expected, "channels_last": True}
    # The net's config now says the opposite: the rescoring still computes as the run did.
    saved["hyper_parameters"]["model"]["auto_bf16"] = not auto_bf16
    torch.save(saved, checkpoint := tmp_path / "best.ckpt")
    rescored = evaluate(compose_evaluate([f"ckpt_path={checkpoint}", *data], tmp_path / "rescored"))  # under auto
    assert read_provenance(tmp_path / "rescored")["test"]["precision"] == expected
    assert rescored["test/miou"] == pytest.approx(trained["test/miou"], abs=1e-6)


@pytest.mark.parametrize(("auto_bf16", "expected"), [("true", "bf16-mixed"), ("false", "32-true")])
def test_a_study_pins_the_precision_its_nets_resolve_to_for_every_job(tmp_path, flags, auto_bf16, expected):
    flags("avx512_bf16")
    command = ["study.models=[unet,pspnet]", f"model.auto_bf16={auto_bf16}", "trainer.precision=auto"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("study", overrides=command)
        jobs = StudyJobs(StudyPlan(cfg, tmp_path), command, searched=set())
        assert jobs.pin_precision(list(cfg.study.models)) == expected
        assert jobs.compose("train", [*jobs.overrides, "model=pspnet"]).trainer.precision == expected
    assert [o for o in jobs.overrides if o.startswith("trainer.precision")] == [f"trainer.precision={expected}"]


def test_predict_with_precision_auto_parses_in_bf16_only_where_native_and_trained_in_it(checkpoint, flags, tmp_path):
    crops = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    saved["trained_with"] = {"precision": "bf16-mixed", "channels_last": True}  # whatever this machine trained it in
    torch.save(saved, checkpoint := tmp_path / "bf16.ckpt")
    flags("avx2")
    float32 = load_parser(checkpoint, "cpu", "32").run(crops)
    np.testing.assert_array_equal(load_parser(checkpoint, "cpu", "auto").run(crops), float32)
    flags("avx512_bf16")
    bf16 = load_parser(checkpoint, "cpu", "bf16").run(crops)
    np.testing.assert_array_equal(load_parser(checkpoint, "cpu", "auto").run(crops), bf16)
    assert not np.array_equal(bf16, float32)  # bfloat16 did run: its logits differ in their last bits
    with pytest.raises(ValueError, match="expected one of 32, bf16, 16, auto"):
        load_parser(checkpoint, "cpu", "64")
    # A checkpoint of a run trained in float32, or one that does not say, parses in float32 on the same processor.
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    for name, record in (("float32", {"precision": "32-true", "channels_last": True}), ("unsaid", None)):
        saved["trained_with"] = record
        torch.save(saved, kept := tmp_path / f"{name}.ckpt")
        np.testing.assert_array_equal(load_parser(kept, "cpu", "auto").run(crops), float32)
