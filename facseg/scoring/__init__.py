"""Test-time scoring: the evaluator callback (clean, occluded, per image), the probabilities shared between
ensembles, one test pass for many checkpoints and ensembles, the test's memory footprint. The metric definitions
themselves live below, in facseg.metrics. Importing the package imports nothing heavy."""
