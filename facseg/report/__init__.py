"""Turn a sweep (or a single run) directory into a comparison report: report.md plus figures.

    python -m facseg.report logs/multiruns/2026-11-26_10-00-00      (no directory: the newest sweep)

Jobs that differ only in their seed form one row: the mean over the seeds with a 95 % interval that treats the runs
and the test images as random (facseg.report.bootstrap, from each run's per_image.npz), then paired differences
between the rows, every p-value Holm-adjusted over all the tests the report prints. Failed and unfinished jobs are
listed as such. Figures land in DIR/figures: the severity curve, per-class F1 and IoU bars (clean and occluded), the
confusion matrices, and a qualitative grid of the same test images under every model. The names below are also
what notebooks/compare_models.ipynb calls.

The package: runs (loading), bootstrap (the statistics, NumPy and SciPy), estimates (intervals per configuration,
the family of tests), tables, occlusion (its section), figures, writing (report.md and the command), calibration
(make calibrate-stats). No torch.
"""

from facseg.report.estimates import Statistics
from facseg.report.figures import plot_confusion, plot_per_class, plot_qualitative, plot_severity, png
from facseg.report.occlusion import occlusion_section
from facseg.report.runs import Job, groups, label_map, load_job, load_sweep, mean_f1_classes, newest_sweep
from facseg.report.tables import comparison_table, differences_section, per_class_table, published_table
from facseg.report.writing import main, write_report

__all__ = [
    "Job",
    "Statistics",
    "comparison_table",
    "differences_section",
    "groups",
    "label_map",
    "load_job",
    "load_sweep",
    "main",
    "newest_sweep",
    "occlusion_section",
    "per_class_table",
    "plot_confusion",
    "plot_per_class",
    "plot_qualitative",
    "plot_severity",
    "png",
    "published_table",
    "mean_f1_classes",
    "write_report",
]
