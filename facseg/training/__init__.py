"""One training job: config checks, the trainer, fit then test, the run's record. Above the models and the scoring;
the study and the commands call it."""
