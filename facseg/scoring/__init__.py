"""Test-time scoring: the evaluator callback (clean, occluded, per image), warping crop scores back onto the photos,
the probabilities shared between ensembles, one test pass for many checkpoints and ensembles, and the metric
definitions (torchmetrics for the device, NumPy for the report). Importing the package imports nothing heavy."""
