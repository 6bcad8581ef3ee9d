"""The fair comparison in one command: the same tuning budget per architecture, seeds, ensembles, intervals.

    python -m facseg.study [study.trials=N study.seeds=M] [any run override] hydra.sweep.dir=DIR

1. Search: per architecture, one Optuna study over `search_space` (conf/search_space.yaml) with `study.trials`
   trials of `study.search_epochs` epochs, scored on validation (`optimized_metric`) only: the test split is never
   touched. The best trial's settings are each architecture's chosen settings (DIR/chosen.json).
2. Retrain: each architecture's chosen settings with `study.seeds` fresh seeds (trained only: test=false); with
   `study.arms=[clean,occluded]`, also trained with occluders on a fraction `study.occlusion_p` of the training
   images (the same settings and seeds: an arm of the study, not another search).
3. The test pass, once per arm: every run, and (first arm) the ensembles, scored in one pass over the test
   loaders (clean and every occluded condition, per-image results kept): each architecture's seeds as one
   ensemble, and the architectures together (one ensemble per seed index, so it has seeds too), each with equal
   weights and with weights fitted on validation.
4. The report (DIR/report.md): every configuration with 95 % intervals that treat the runs and the test images as
   random, paired tests Holm-adjusted over every test the report prints, the comparator chosen on validation, the
   chosen settings, the ensembles' weights and the time each phase took.

Resuming: every trial is recorded in DIR/search/MODEL/trials.json, every run and ensemble in its own folder with its
status.json. Rerunning the command skips what finished, resumes a killed run from its last checkpoint and reruns
an interrupted trial with its own settings. A failing trial is recorded as failed and the search goes on; an
architecture whose every trial failed, or a run that fails, is named in the report and the others go on.

The package: plan (what the study consists of, where each piece lives), jobs (runs composed with the user's
overrides), search, testpass (runs and ensembles in one pass, fitted weights), sections (its report's own
sections) and orchestrator (the phases in order, timed); `__main__` is the command.
"""
