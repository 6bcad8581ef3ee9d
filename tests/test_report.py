"""facseg.report and the notebook, on a real tiny sweep: two models x two seeds, plus a job that failed."""

import json
import os
import re
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

import facseg
from facseg.report import load_sweep, main, write_report
from tests.helpers import FEW_CONDITIONS, TINY, run_facseg, tiny_data

pytestmark = pytest.mark.slow  # every test here trains nets or starts commands: `make test-all`

NOTEBOOK = facseg.PROJECT_ROOT / "notebooks" / "compare_models.ipynb"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, tiny_root):
    cwd = tmp_path_factory.mktemp("sweep")
    sweep = cwd / "multirun"
    result = run_facseg(
        [
            "-m",
            "model=unet,segnet",
            "seed=0,1",
            *TINY,
            *FEW_CONDITIONS,
            *tiny_data(tiny_root),
            "logger=csv",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # A fifth job that fails, as a crashed sweep point leaves it: status.json with the error, no metrics.
    bad = ["model=pspnet", *TINY, *tiny_data(tiny_root), "data.image_size=100"]
    failed = run_facseg([*bad, f"hydra.run.dir={sweep / '4_pspnet'}"], cwd)
    assert failed.returncode != 0
    return sweep


def test_report_tables_figures_and_failures(sweep, tmp_path):
    report = write_report(sweep, tmp_path)
    text = report.read_text()
    rows = {}  # the first table's row of each name: the comparison table
    for line in text.splitlines():
        if line.startswith("| "):
            rows.setdefault(line.split(" | ")[0].strip("| "), line.split(" | "))
    jobs = {j.name: json.loads((sweep / j.name / "metrics.json").read_text()) for j in load_sweep(sweep) if j.metrics}
    unet = [m for name, m in jobs.items() if m["model"] == "unet"]
    assert len(unet) == 2
    mean = sum(m["test/miou"] for m in unet) / 2
    # The mean of the seeds' own test values, in brackets its 95 % interval over seeds and test images.
    cell = re.fullmatch(r"(\S+) \[(\S+), (\S+)\]", rows["unet"][2])
    assert rows["unet"][1] == "2" and cell[1] == f"{100 * mean:.1f}"
    assert float(cell[2]) < float(cell[1]) < float(cell[3])
    assert "| unet | segnet | " in text and "**unet - segnet**, F1 per class" in text  # the paired tests
    assert set(rows) >= {"unet", "segnet", "model", "4_pspnet"}
    assert "data.image_size=100 must be a multiple of 32" in next(
        line for line in text.splitlines() if "4_pspnet" in line
    )
    assert "| failed |" in text and "published" not in text  # published LaPa figures only for data=lapa
    for figure in ("f1_per_class", "iou_per_class", "confusion_test", "confusion_occluded", "qualitative"):
        path = tmp_path / "figures" / f"{figure}.png"
        assert path.stat().st_size > 10_000 and f"figures/{figure}.png" in text, figure
    assert not list(tmp_path.rglob("*.partial"))


def test_report_command_writes_into_the_sweep(sweep, capsys):
    main([str(sweep)])
    assert capsys.readouterr().out.strip() == str(sweep / "report.md")
    assert (sweep / "figures" / "qualitative.png").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([str(sweep / "0_unet" / "csv")])
    assert "holds no jobs" in capsys.readouterr().err


def test_notebook_runs_headless_on_the_sweep(sweep, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    os.environ["FACSEG_SWEEP"] = str(sweep)
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
    finally:
        del os.environ["FACSEG_SWEEP"]
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", "")) for o in outputs)
    assert "| unet | 2 |" in text and "4_pspnet" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3


def test_lapa_sweeps_are_set_beside_the_published_results(sweep, tmp_path):
    lapa = tmp_path / "lapa-sweep"
    shutil.copytree(sweep, lapa)
    for path in lapa.glob("*/metrics.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "data": "lapa"}))
    text = write_report(lapa).read_text()
    assert "## Beside the published results" in text
    assert "Published: LaPa test split (2,000 photos), mean F1 over the 10 foreground classes" in text
    for row in (
        "| BASS (published) | 89.8 |",
        "| DML-CSR (published) | 92.4 |",
        "| SegFace (published) | 93.0 |",
        "| FaRL (published) | 93.9 |",
        "| unet (this sweep) |",
    ):
        assert row in text, row
