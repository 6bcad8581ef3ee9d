"""facseg: face parsing experiments on LaPa with PyTorch Lightning and Hydra.

The folders are the stages a run passes through: data/ (datasets, crops, occluders), models/ (the nets and the one
LightningModule), scoring/ (test-time scoring at the photo's resolution), study/ (the fair comparison), report/
(offline statistics, tables and figures), runtime/ (plumbing every command shares). The modules beside them are the
commands: run, evaluate, predict, export, demo (and cli, the `facseg` command).
"""

import os
from pathlib import Path

from facseg.runtime import resolvers

# albumentations asks PyPI for a newer version on import: a network call that stalls on offline compute nodes.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_DIR = PACKAGE_DIR / "conf"  # the configs ship inside the package (the checkout's top-level conf/ links here)
# Where data and logs land: the project, when facseg runs from a checkout (the editable install), whatever the
# working directory; the working directory, when it is installed from a wheel.
PROJECT_ROOT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "pyproject.toml").is_file() else Path.cwd()

resolvers.register(PROJECT_ROOT)  # the configs' ${facseg_root:}, ${sweep_name:}, ${run_name:...}, ${run_tags:...}
