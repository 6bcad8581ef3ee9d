"""What a study says it cost: each phase's minutes and a run's training, read from study.json."""

import json
import multiprocessing
from functools import partial

from facseg.runtime.atomic import update_json
from facseg.study.orchestrator import add, durations


def test_a_runs_time_is_the_median_of_its_configurations_runs_so_one_slow_spell_does_not_move_it():
    state = {
        "seconds": {"search": 600.0, "retrain": 2400.0},
        # unet-s2 trained beside other work: 10 minutes where its seeds took 3
        "runs": {"unet-s1": 180.0, "unet-s2": 600.0, "unet-s3": 186.0, "unet-occl-s1": 240.0, "segnet-s1": 300.0},
    }
    assert durations(state) == (
        "search 10.0 min, retrain 40.0 min; a run's training, median minutes: unet 3.1, unet-occl 4.0, segnet 5.0 "
        "(`study.json`)"
    )
    # Resumed on another day, on a slower machine: both processes' speeds are given.
    state["machines"] = [{"matmul_2048_float32_gflops": 229.4}, {"matmul_2048_float32_gflops": 145.0}]
    assert durations(state).endswith(
        "segnet 5.0; the CPU's matrix product at 145-229 GFLOP/s (make bench-ref), measured by the 2 processes that "
        "ran it (`study.json`)"
    )
    assert durations({"seconds": {"search": 60.0}}) == "search 1.0 min"  # a folder from before runs were timed


def train_seeds(path, model: str) -> None:
    for seed in range(200):  # each run's seconds added as Study.retrain adds them
        update_json(path, partial(add, "runs", f"{model}-s{seed}", 1.0), empty=lambda: {"seconds": {}})


def test_processes_that_work_on_one_study_folder_at_once_keep_each_others_times(tmp_path):
    """`study.models=[unet]` and `study.models=[segnet]` on one folder, at once: study.json ends with both."""
    path = tmp_path / "study.json"
    fork = multiprocessing.get_context("fork")
    processes = [fork.Process(target=train_seeds, args=(path, model)) for model in ("unet", "segnet")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    runs = json.loads(path.read_text())["runs"]
    assert len(runs) == 400 and set(runs.values()) == {1.0}
