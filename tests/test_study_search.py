"""The search's sampler, resumed: a search killed after any trial goes on drawing what an uninterrupted one draws.

The trials here score their settings by a formula instead of training (tests/test_study.py trains, kills and resumes
a real study); what is under test is the order of the sampler's draws.
"""

import json

import pytest
from hydra import compose, initialize_config_dir

import facseg
from facseg.runtime.atomic import write_json
from facseg.study.plan import StudyPlan
from facseg.study.search import Search


class Scored(Search):
    """A search whose trials score their settings at once, and count how many were run."""

    def __init__(self, plan: StudyPlan) -> None:
        super().__init__(plan, jobs=None)
        self.ran: list[int] = []

    def trial(self, model, number, params):
        self.ran.append(number)
        return {"state": "complete", "value": -abs(params["optimizer.lr"] - 3e-3)}


def search(directory, trials: int) -> Scored:
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        cfg = compose("study", overrides=[f"study.trials={trials}"])
    return Scored(StudyPlan(cfg, directory))


def records(directory) -> list[dict]:
    return json.loads((directory / "search" / "unet" / "trials.json").read_text())


@pytest.mark.parametrize("done", [1, 2])
def test_a_resumed_search_draws_the_trials_an_uninterrupted_one_draws(tmp_path, done):
    uninterrupted = tmp_path / "uninterrupted"
    best = search(uninterrupted, trials=4).run("unet")
    expected = records(uninterrupted)
    assert len({json.dumps(r["params"]) for r in expected}) == 4  # four different settings

    # Killed while trial `done` ran: the finished ones recorded, the interrupted one marked running.
    resumed = tmp_path / "resumed"
    killed = [*expected[:done], {"params": expected[done]["params"], "state": "running"}]
    (resumed / "search" / "unet").mkdir(parents=True)
    write_json(resumed / "search" / "unet" / "trials.json", killed)
    again = search(resumed, trials=4)
    assert again.run("unet") == best
    assert again.ran == list(range(done, 4))  # the finished trials were not run again
    assert records(resumed) == expected


def test_a_search_whose_records_the_sampler_does_not_draw_is_refused_by_name(tmp_path):
    found = search(tmp_path, trials=2)
    found.run("unet")
    path = tmp_path / "search" / "unet" / "trials.json"
    changed = records(tmp_path)
    changed[1]["params"]["optimizer.lr"] = 1e-3  # as if the search space had changed since
    write_json(path, changed)
    with pytest.raises(ValueError, match=r"trials\.json: trial 1 ran with .* but the sampler now draws"):
        search(tmp_path, trials=3).run("unet")
