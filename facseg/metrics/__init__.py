"""The metric definitions, below the models and the scoring (this room imports neither): region metrics from pooled
confusion matrices (torchmetrics on the device, NumPy for the report), and the kinds of error a region overlap does
not see: boundaries, fragments and distances, anatomy, the jawline. Each is usable on two NumPy label maps."""
