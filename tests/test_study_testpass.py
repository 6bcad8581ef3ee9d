"""What a resumed study's test pass takes up again, read from its folders (nothing trained or scored here)."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import facseg
from facseg.study.plan import StudyPlan
from facseg.study.testpass import StudyTestPass


def study_test_pass(directory: Path, overrides: list[str] = ()) -> StudyTestPass:
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        cfg = compose("study", overrides=["study.seeds=3", *overrides])
    return StudyTestPass(StudyPlan(cfg, directory), jobs=None)


def write(folder: Path, status: dict, metrics: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps(status))
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_the_protocol_fingerprint_ignores_where_caches_sit_and_follows_what_is_tested(tmp_path):
    real = "data.occluded_test.real"
    here = study_test_pass(tmp_path, [f"{real}.cache_dir=/a/occluders", f"{real}.composed_dir=/a/composed"]).protocol
    moved = study_test_pass(tmp_path, [f"{real}.cache_dir=/b/occluders", f"{real}.composed_dir=/b/composed"]).protocol
    assert here == moved  # a study resumed from another checkout does not test its runs again
    assert study_test_pass(tmp_path, ["data.occluded_test.severities=[0.1]"]).protocol != here
    assert study_test_pass(tmp_path, [f"{real}.root={tmp_path / 'elsewhere'}"]).protocol != here  # no real objects


@pytest.mark.parametrize("scored_seeds, due", [((1, 2), True), ((1, 2, 3), False)])
def test_an_ensemble_scored_before_a_failed_run_was_retrained_is_scored_again(tmp_path, scored_seeds, due):
    testing = study_test_pass(tmp_path)
    protocol = testing.protocol
    for seed in (1, 2, 3):  # all three seeds trained and tested now
        run = tmp_path / "runs" / f"unet-s{seed}"
        checkpoint = run / "checkpoints" / "best.ckpt"
        write(run, {"status": "ok", "test_protocol": protocol}, {"best_checkpoint": str(checkpoint)})
    for weighting in ("equal", "fitted"):  # scored when seed 3 had failed, or with all three
        checkpoints = [str(tmp_path / "runs" / f"unet-s{s}" / "checkpoints" / "best.ckpt") for s in scored_seeds]
        folder = tmp_path / "ensembles" / f"unet-seeds-{weighting}"
        write(folder, {"status": "ok", "test_protocol": protocol}, {"checkpoints": checkpoints})
    labels = [label for label, _, _ in testing.ensembles_due(["unet"])]
    assert labels == (["unet x3 seeds (equal)", "unet x3 seeds (fitted)"] if due else [])
