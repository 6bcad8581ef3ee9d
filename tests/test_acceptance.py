"""The README's main job at its real default size: every model learns (test mIoU >= 0.5), and its seed-0 numbers
are the committed record's of this CPU family to the last digit where the lock, the precision and torch's threads are
the record's too (facseg.report.acceptance). This run's record is written to logs/acceptance/FAMILY.json, what
becomes the family's record when committed to experiments/acceptance/.

Too slow for `make test-all`: `make acceptance` runs it.
"""

import json
import subprocess
import sys
import time

import pytest

import facseg
from facseg.report.acceptance import MODELS, artefact_path, compare, sweep_record
from facseg.runtime.atomic import write_json
from tests.helpers import subprocess_env

pytestmark = pytest.mark.acceptance


def test_default_sweep_learns_and_gives_the_recorded_numbers(tmp_path):
    sweep = tmp_path / "sweep"
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "facseg.run",
        "-m",
        f"model={','.join(MODELS)}",
        f"hydra.sweep.dir={sweep}",
        "trainer.enable_progress_bar=false",
    ]
    # A guard against a hung job, not a time check: machines differ several-fold in speed.
    result = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    here = sweep_record(sweep, (time.perf_counter() - start) / 60)
    out = facseg.PROJECT_ROOT / "logs" / "acceptance" / f"{here['family']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, here)
    recorded = artefact_path(here["family"])
    holds, text = compare(here, json.loads(recorded.read_text()) if recorded.is_file() else None)
    scores = {model: here["numbers"][model]["test/miou"] for model in MODELS}
    f1 = {model: here["numbers"][model]["test/f1_fg"] for model in MODELS}
    print(f"\ndefault sweep: {here['minutes']} min, test/miou {scores}, test/f1_fg {f1}\nrecord: {out}\n{text}")
    assert all(score >= 0.5 for score in scores.values()), scores
    assert holds, text
