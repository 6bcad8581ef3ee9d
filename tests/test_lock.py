"""The lock (requirements.lock) and pyproject.toml agree, and `make install` installed exactly the lock."""

from __future__ import annotations

import platform
import re
import subprocess
import sys
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import facseg

ROOT = facseg.PROJECT_ROOT
LOCKED_EXTRAS = ("dev", "sweepers", "demo")  # what `make install` and `make lock` take (Makefile)


def locked() -> dict[str, tuple[str, int]]:
    """Each locked package: its version and how many hashes it has."""
    found = {}
    for block in re.split(r"\n(?=\S)", (ROOT / "requirements.lock").read_text()):
        first = block.splitlines()[0]
        if first.startswith("#"):
            continue
        name, version = first.rstrip(" \\").split(";")[0].strip().split("==")
        found[canonicalize_name(name)] = (version, block.count("--hash=sha256:"))
    return found


def required() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *(r for e in LOCKED_EXTRAS for r in extras[e])]]


def test_every_requirement_of_pyproject_is_locked_at_a_version_it_allows():
    """Fails when pyproject.toml gains or changes a requirement and the lock was not refreshed (`make lock`)."""
    lock = locked()
    for requirement in required():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is not in requirements.lock: run `make lock`"
        version, hashes = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock has {name}=={version}, which pyproject.toml's {requirement} excludes: run `make lock`"
        )
    assert all(hashes for _, hashes in lock.values()), "every locked package carries its hashes"


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11) or platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="the lock is for CPython 3.11 on Linux x86-64; elsewhere `make install` takes pyproject's ranges",
)
def test_the_environment_is_the_lock():
    """What `make install` installs on the locked platform: every locked version, none other."""
    differs = []
    for name, (version, _) in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differs.append(f"{name}: locked {version}, installed {installed}")
    assert not differs, "the environment is not the lock (`make install`): " + "; ".join(differs)


@pytest.mark.slow
def test_make_lock_gives_the_committed_lock(tmp_path):
    """`make lock` (uv, from PyPI's index) resolves pyproject.toml to the committed lock, keeping its pins: the
    lock is what its command says, and refreshing it after no change changes nothing."""
    copy = tmp_path / "requirements.lock"
    copy.write_text((ROOT / "requirements.lock").read_text())
    result = subprocess.run(["make", "lock", f"LOCK={copy}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert copy.read_text() == (ROOT / "requirements.lock").read_text()
