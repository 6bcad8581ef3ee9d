"""Several processes on one study folder: each run is trained by one of them, and each tests only once every run
is finished. Training stands in as a short sleep: what is tested is who trains what, and when they may test."""

import json
import multiprocessing
import time
from pathlib import Path
from types import SimpleNamespace

from facseg.runtime.atomic import claimed
from facseg.runtime.record import read_status, write_status
from facseg.study.orchestrator import Study, claim_file, wait_for

SEEDS = [1, 2, 3, 4, 5, 6]


def hold(path: Path, taken, release) -> None:
    with claimed(path) as mine:
        assert mine
        taken.set()
        release.wait(30)


def test_a_claim_held_by_one_process_is_refused_to_another_until_it_lets_go(tmp_path):
    fork = multiprocessing.get_context("fork")
    taken, release = fork.Event(), fork.Event()
    holder = fork.Process(target=hold, args=(tmp_path / "run.claim", taken, release))
    holder.start()
    assert taken.wait(30)
    with claimed(tmp_path / "run.claim") as mine:
        assert not mine
    release.set()
    holder.join(30)
    with claimed(tmp_path / "run.claim") as mine:
        assert mine


def study(directory: Path, name: str) -> Study:
    """Study.retrain as it runs, its training a 0.3 s sleep that writes the run's status and says who trained it."""

    def train(output_dir: Path, model, seed, params, extra, keep_best) -> None:
        time.sleep(0.3)
        write_status(output_dir, {"status": "ok"})
        with open(directory / "trained.txt", "a") as log:
            log.write(f"{output_dir.name} {name}\n")

    plan = SimpleNamespace(
        dir=directory,
        seeds=lambda: SEEDS,
        arms=lambda: {"": []},
        run_dir=lambda model, seed, arm="": directory / "runs" / f"{model}-s{seed}",
    )
    shared = Study.__new__(Study)
    shared.plan, shared.jobs, shared.state = plan, SimpleNamespace(train=train), {"seconds": {}}
    return shared


def work(directory: Path, name: str) -> None:
    """What each process of a study does: its share of the runs, then (as before its test pass) waits for the rest."""
    worker = study(directory, name)
    wait_for(worker.retrain("unet", {"params": {}}, ""))
    unfinished = [s for s in SEEDS if read_status(directory / "runs" / f"unet-s{s}")["status"] != "ok"]
    assert not unfinished, f"{name} would test before unet seeds {unfinished} were trained"


def test_processes_with_the_same_command_share_the_runs_and_test_after_all_are_trained(tmp_path):
    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=work, args=(tmp_path, name)) for name in ("first", "second")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    trained = dict(line.split() for line in (tmp_path / "trained.txt").read_text().splitlines())
    assert len(trained) == len(SEEDS) == sum(1 for _ in (tmp_path / "trained.txt").open())  # each run once
    assert set(trained.values()) == {"first", "second"}  # by both processes
    assert sorted(json.loads((tmp_path / "study.json").read_text())["runs"]) == sorted(trained)  # each timed
    for seed in SEEDS:  # and let go
        with claimed(claim_file(tmp_path / "runs" / f"unet-s{seed}")) as mine:
            assert mine
