"""python -m facseg.evaluate: a checkpoint is scored with its own settings and reproduces its run's test metrics;
an ensemble of a checkpoint with itself is the checkpoint; settings that disagree are refused."""

import json

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from facseg.data.labels import IGNORE
from facseg.data.warp import CERTAIN
from facseg.evaluate import evaluate
from facseg.models.module import FaceSegModule
from facseg.scoring.evaluator import TestEvaluator
from facseg.scoring.onepass import Scoring, score
from facseg.training.job import train
from tests import wandb_log
from tests.helpers import TINY, compose_evaluate, compose_train, same_number, tiny_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_root):
    run_dir = tmp_path_factory.mktemp("trained")
    train(compose_train([*TINY, *tiny_data(tiny_root), "logger=csv"], run_dir))  # precision=auto, both sides
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_evaluate_scores_with_the_checkpoints_own_settings(tmp_path, tiny_root, trained):
    """Trained on 64 px crops; the data config's default is 128 px: the checkpoint's 64 px must win, silently."""
    overrides = [f"ckpt_path={trained['best_checkpoint']}", *tiny_data(tiny_root), "group=rescored"]
    metrics = evaluate(compose_evaluate(overrides, tmp_path, wandb=True))
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    (log,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")  # an offline W&B run of its own kind
    run = wandb_log.run_info(log)
    assert (run.job_type, run.display_name, run.run_group) == ("evaluate", "unet", "rescored")
    assert list(run.tags) == ["unet", "synthetic"]
    assert wandb_log.summary(log)["test/miou"] == pytest.approx(metrics["test/miou"])
    assert wandb_log.config(log)["checkpoint_settings"]["crop"]["image_size"] == 64
    assert metrics["model"] == "unet" and metrics["crop"] == {"image_size": 64, "align": True, "margin": 0.6}
    assert "occluded/drop/f1_fg" in metrics
    for key, value in trained.items():
        if key.startswith(("test/", "occluded/")):
            assert metrics[key] == same_number(key, value), key
    assert (tmp_path / "per_image.npz").is_file() and (tmp_path / "confusion.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("resolution", ["original", "crop"])
def test_ensemble_of_a_checkpoint_with_itself_equals_the_checkpoint(tmp_path, tiny_root, trained, resolution):
    """Each member's logits go through the same warp back to the photo as a single net's, then are averaged."""
    best, data = trained["best_checkpoint"], [*tiny_data(tiny_root), f"data.eval_resolution={resolution}"]
    alone = evaluate(compose_evaluate([f"ckpt_path={best}", *data], tmp_path / "alone"))
    both = evaluate(compose_evaluate([f"ckpt_paths=[{best},{best}]", "weights=[3,1]", *data], tmp_path / "both"))
    assert both["model"] == "ensemble(unet+unet)" and both["weights"] == [0.75, 0.25]
    compared = [k for k in alone if k.startswith(("test/", "occluded/")) and not k.endswith("/loss")]
    # Every metric, clean (26) and occluded (26, their 25 drops, under the occluders 4 + 2 x 10 classes, on the
    # visible pixels 4 + 4 clean), and on photos pixel acc and RMSE inside the crop (2 + 2); the kinds of error,
    # clean, occluded and their drops (3 x 87: 7 metrics, their means and 11 classes, anatomy_ok, the jaw by
    # landmarks and by outline).
    assert len(compared) == (113 if resolution == "original" else 109) + 3 * 87
    for key in compared:
        assert both[key] == same_number(key, alone[key]), key


@pytest.mark.slow
def test_one_pass_scores_each_checkpoint_and_ensemble_as_its_own_evaluation(tmp_path, tiny_root, trained):
    """A study scores its ensembles in one test pass, each checkpoint predicting once: every scoring's results,
    files and W&B run must be those of its own evaluation."""
    best, data = trained["best_checkpoint"], tiny_data(tiny_root)
    other = str(tmp_path / "other.ckpt")  # a second net: the same weights, shifted, and another loss
    checkpoint = torch.load(best, weights_only=True)
    checkpoint["state_dict"] = {
        k: v + 0.01 * v.std() if v.is_floating_point() and v.numel() > 1 else v
        for k, v in checkpoint["state_dict"].items()
    }
    checkpoint["hyper_parameters"]["dice_weight"] += 2.0  # an ensemble's loss is its first member's
    torch.save(checkpoint, other)
    scorings = [
        Scoring(None, (best,), None, tmp_path / "a"),
        Scoring("pair", (other, best), (0.3, 0.7), tmp_path / "pair"),
        Scoring(None, (other,), None, tmp_path / "b"),
    ]
    together = score(compose_evaluate(data, tmp_path, wandb=True), scorings)
    alone = [
        evaluate(compose_evaluate([f"ckpt_path={best}", *data], tmp_path / "a-alone")),
        evaluate(
            compose_evaluate(
                [f"ckpt_paths=[{other},{best}]", "weights=[3,7]", "name=pair", *data], tmp_path / "pair-alone"
            )
        ),
        evaluate(compose_evaluate([f"ckpt_path={other}", *data], tmp_path / "b-alone")),
    ]
    assert together[0]["test/miou"] != together[2]["test/miou"]  # two different nets
    for scoring, one, reference in zip(scorings, together, alone):
        assert json.loads((scoring.output_dir / "metrics.json").read_text()) == one
        assert one.keys() == reference.keys()
        for key, value in reference.items():
            if isinstance(value, float):
                assert one[key] == same_number(key, value), (scoring.name, key)
            else:
                assert one[key] == value, (scoring.name, key)
        (log,) = scoring.output_dir.glob("wandb/offline-run-*/run-*.wandb")
        assert wandb_log.run_info(log).display_name == one["model"]
        assert wandb_log.summary(log)["occluded/f1_fg"] == pytest.approx(one["occluded/f1_fg"])
        assert wandb_log.config(log)["checkpoints"] == list(scoring.checkpoints)


def test_settings_that_contradict_the_checkpoint_are_refused(tmp_path, tiny_root, trained):
    best = trained["best_checkpoint"]
    with pytest.raises(ValueError, match=r"data.image_size=128 contradicts the checkpoint, trained with image_size=64"):
        evaluate(compose_evaluate([f"ckpt_path={best}", *tiny_data(tiny_root), "data.image_size=128"], tmp_path))
    # A member trained on other crops: the same weights, recorded at another margin.
    other = tmp_path / "other.ckpt"
    checkpoint = torch.load(best, weights_only=True)
    checkpoint["hyper_parameters"]["crop"]["margin"] = 0.3
    torch.save(checkpoint, other)
    with pytest.raises(
        ValueError,
        match=rf"members were trained with different crop: {best} has .*'margin': 0.6.*"
        rf"{other} has .*'margin': 0.3",
    ):
        evaluate(compose_evaluate([f"ckpt_paths=[{best},{other}]", *tiny_data(tiny_root)], tmp_path))
    assert not (tmp_path / "metrics.json").exists()


def test_bad_requests_are_named(tmp_path, tiny_root, trained):
    with pytest.raises(FileNotFoundError, match="nowhere.ckpt: no such checkpoint"):
        evaluate(compose_evaluate([f"ckpt_path={tmp_path / 'nowhere.ckpt'}", *tiny_data(tiny_root)], tmp_path))
    best = trained["best_checkpoint"]
    with pytest.raises(ValueError, match=r"weights=\[1.0\]: expected 2"):
        evaluate(compose_evaluate([f"ckpt_paths=[{best},{best}]", "weights=[1]", *tiny_data(tiny_root)], tmp_path))
    with pytest.raises(ValueError, match="give ckpt_path=PATH"):
        evaluate(compose_evaluate([*tiny_data(tiny_root)], tmp_path))


@pytest.mark.slow
def test_flip_tta_is_an_ensemble_of_two_views(tmp_path, tiny_root, trained):
    best, data = trained["best_checkpoint"], tiny_data(tiny_root)
    alone = evaluate(compose_evaluate([f"ckpt_path={best}", *data], tmp_path / "alone"))
    flipped = evaluate(compose_evaluate([f"ckpt_path={best}", *data, "tta=flip"], tmp_path / "tta"))
    assert (alone["tta"], flipped["tta"]) == (None, "flip") and flipped["test/miou"] != alone["test/miou"]
    assert 0 < flipped["test/miou"] <= 1 and 0 < flipped["occluded/miou"] <= 1
    both = evaluate(compose_evaluate([f"ckpt_paths=[{best},{best}]", *data, "tta=flip"], tmp_path / "both"))
    assert both["test/miou"] == pytest.approx(flipped["test/miou"], abs=1e-6)  # an ensemble of itself, with TTA
    with pytest.raises(ValueError, match="tta=rotate: expected flip"):
        evaluate(compose_evaluate([f"ckpt_path={best}", *data, "tta=rotate"], tmp_path / "bad"))


@pytest.mark.slow
def test_a_lapa_class_model_is_scored_on_celebamask_through_the_declared_mapping(tmp_path, trained, celebamask_small):
    """LaPa's classes on real CelebAMask-HQ faces: eyes and brows by position, ears as skin, glasses not scored."""
    overrides = [f"ckpt_path={trained['best_checkpoint']}", "data=celebamask", f"data.root={celebamask_small}"]
    metrics = evaluate(compose_evaluate(overrides, tmp_path))
    assert metrics["labels"]["name"] == "lapa" and metrics["mapped_from"] == "celebamask"
    assert "test/f1/left_eye" in metrics and "test/f1/eye_g" not in metrics
    assert 0 < metrics["test/pixel_acc"] < 1 and metrics["occluded/pixel_acc"] is not None


class Oracle(FaceSegModule):
    """A net that predicts each test crop's own label with certainty: the best any net at this crop size can do."""

    def test_step(self, batch, batch_idx, dataloader_idx=0):
        label = batch["label"].where(batch["label"] != IGNORE, 0)
        one_hot = torch.nn.functional.one_hot(label, len(self.label_map)).permute(0, 3, 1, 2).float()
        return (one_hot * 2 * CERTAIN - CERTAIN)[None]


@pytest.mark.slow
def test_the_ceiling_is_what_a_perfect_crop_prediction_scores(tmp_path, tiny_root):
    cfg = compose_train([*TINY, *tiny_data(tiny_root)], tmp_path)
    datamodule = hydra.utils.instantiate(cfg.data)
    oracle = Oracle(model=OmegaConf.to_container(cfg.model, resolve=True), **datamodule.recorded_settings)
    evaluator = TestEvaluator()
    trainer = pl.Trainer(accelerator="cpu", logger=False, callbacks=[evaluator], enable_progress_bar=False)
    trainer.test(oracle, datamodule=datamodule)
    results = {k: float(v) for k, v in evaluator.results.items()}
    assert results["test/f1_fg"] == pytest.approx(results["ceiling/f1_fg"], abs=1e-6)
    assert results["ceiling/f1_fg"] < 1.0  # the crop's resolution costs the thin parts
    assert results["test/f1/left_eye"] == pytest.approx(results["ceiling/f1/left_eye"], abs=1e-6)
