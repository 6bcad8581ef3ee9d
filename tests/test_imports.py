"""Light modules stay light: the crop cache needs neither Lightning nor albumentations, reports need no torch."""

import subprocess
import sys

import pytest

from tests.conftest import subprocess_env


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("facseg.data.prepare", ["pytorch_lightning", "albumentations", "torch"]),
        ("facseg.data.check", ["pytorch_lightning", "albumentations", "torch"]),
        ("facseg.report", ["torch", "pytorch_lightning"]),
        ("facseg.results", ["torch"]),
    ],
)
def test_module_does_not_import(module, absent):
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"import {module} loads {result.stdout.strip()}"
