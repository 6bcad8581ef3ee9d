"""The `facseg` console command: installed from the built wheel and run from outside the checkout, and as installed
here (editable), with Hydra's --cfg, --help and bash completion."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import facseg

pytestmark = pytest.mark.slow  # every test here trains nets or starts commands: `make test-all`

FACSEG = Path(sys.executable).parent / "facseg"  # the console script `make install` put beside this Python


def facseg_command(*args: str, cwd: Path, env: dict[str, str] | None = None, command: Path = FACSEG):
    return subprocess.run(
        [str(command), *args],
        cwd=cwd,
        env={**os.environ, "WANDB_MODE": "offline", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_each_command_takes_its_modules_arguments(tmp_path):
    result = facseg_command("run", "model=segnet", "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "name: segnet" in result.stdout and "labels:" in result.stdout
    result = facseg_command("evaluate", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "facseg evaluate: score checkpoints" in result.stdout
    result = facseg_command("check", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: facseg check" in result.stdout and "--format" in result.stdout
    result = facseg_command("check", str(tmp_path / "missing"), cwd=tmp_path)
    assert result.returncode == 1 and "no such folder" in result.stderr
    result = facseg_command("train", cwd=tmp_path)
    assert result.returncode == 2 and "unknown command 'train'" in result.stderr
    assert "usage: facseg {run,study,evaluate," in facseg_command(cwd=tmp_path).stdout


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("facseg ev", {"evaluate"}),
        ("facseg run model=", {"model=unet", "model=segnet", "model=pspnet", "model=smp"}),
        ("facseg evaluate tt", {"tta="}),
    ],
)
def test_bash_completion_knows_the_commands_and_their_configs(tmp_path, line, expected):
    install = facseg_command("-sc", "install=bash", cwd=tmp_path)
    assert install.stdout.rstrip().endswith("-F hydra_bash_completion facseg")
    query = facseg_command("-sc", "query=bash", cwd=tmp_path, env={"COMP_LINE": line})
    assert expected <= set(query.stdout.split()), query.stdout + query.stderr[-2000:]


def test_the_built_wheel_runs_from_outside_the_checkout(tmp_path):
    """`pip install .` (not editable) carries the configs and the face detector, and `facseg run --cfg job` works
    from any directory, importing the installed copy, not this checkout."""
    source = tmp_path / "source"  # built from a copy: setuptools writes build/ where it builds
    shutil.copytree(facseg.PACKAGE_DIR, source / "facseg", ignore=shutil.ignore_patterns("__pycache__", "local"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(facseg.PROJECT_ROOT / name, source)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("facseg-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"facseg/conf/train.yaml", "facseg/conf/data/labels/celebamask.yaml"} <= set(names)
    assert {"facseg/assets/yunet/yunet_n_320_320.onnx", "facseg/assets/yunet/LICENSE"} <= set(names)
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target)}
    installed = target / "bin" / "facseg"
    result = facseg_command("run", "data=celebamask", "--cfg", "job", cwd=elsewhere, env=env, command=installed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "name: celebamask" in result.stdout
    paths = facseg_command(
        "run", "--cfg", "job", "--resolve", "--package", "paths", cwd=elsewhere, env=env, command=installed
    )
    assert f"data_dir: {elsewhere}/data" in paths.stdout, paths.stdout + paths.stderr  # data and logs land here
    where = subprocess.run(
        [sys.executable, "-c", "import facseg; print(facseg.__file__)"],
        cwd=elsewhere,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
