"""python -m facseg.evaluate: a checkpoint reproduces its run's test metrics; ensembles average probabilities."""

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from facseg.evaluate import evaluate
from facseg.run import train
from tests.conftest import CONF_DIR, TINY, compose_train
from tests.test_run import tiny_data

DATA = [o for o in TINY if o.startswith("data.")]


def compose_evaluate(overrides, output_dir):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.trainer.enable_progress_bar = False
    return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_root):
    run_dir = tmp_path_factory.mktemp("trained")
    train(compose_train([*TINY, *tiny_data(tiny_root), "logger=csv"], run_dir))
    return json.loads((run_dir / "metrics.json").read_text())


def test_evaluate_reproduces_the_training_runs_test_metrics(tmp_path, tiny_root, trained):
    cfg = compose_evaluate([f"ckpt_path={trained['best_checkpoint']}", *DATA, *tiny_data(tiny_root)], tmp_path)
    metrics = evaluate(cfg)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    assert metrics["model"] == "unet"
    assert "occluded/drop/f1_fg" in metrics
    for key, value in trained.items():
        if key.startswith(("test/", "occluded/")):
            assert metrics[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


def test_ensemble_of_a_checkpoint_with_itself_equals_the_checkpoint(tmp_path, tiny_root, trained):
    # Scored on the crops: warping back to the photo interpolates a single net's logits but an ensemble's
    # log-probabilities, which moves RMSE in the fifth decimal.
    best, data = trained["best_checkpoint"], [*DATA, *tiny_data(tiny_root), "data.eval_resolution=crop"]
    alone = evaluate(compose_evaluate([f"ckpt_path={best}", *data], tmp_path / "alone"))
    both = evaluate(compose_evaluate([f"ckpt_paths=[{best},{best}]", "weights=[3,1]", *data], tmp_path / "both"))
    assert both["model"] == "ensemble(unet+unet)" and both["weights"] == [0.75, 0.25]
    for key, value in alone.items():
        if key.startswith("test/") and key != "test/loss":
            assert both[key] == pytest.approx(value, abs=1e-6, nan_ok=True), key


def test_bad_requests_are_named(tmp_path, tiny_root, trained):
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt: no such checkpoint"):
        evaluate(compose_evaluate([f"ckpt_path={tmp_path / 'nowhere.ckpt'}", *tiny_data(tiny_root)], tmp_path))
    best = trained["best_checkpoint"]
    with pytest.raises(ValueError, match=r"weights=\[1.0\]: expected 2"):
        evaluate(compose_evaluate([f"ckpt_paths=[{best},{best}]", "weights=[1]", *tiny_data(tiny_root)], tmp_path))
    with pytest.raises(ValueError, match="give ckpt_path=PATH"):
        evaluate(compose_evaluate([*tiny_data(tiny_root)], tmp_path))
