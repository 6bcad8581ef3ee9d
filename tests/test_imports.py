"""The floor plan holds: light modules stay light, no import cycle (imports inside functions count), stage folders
with thin commands beside them, no module over 400 lines, none named like a standard-library module."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import facseg
from tests.helpers import subprocess_env

PACKAGE = Path(facseg.__file__).parent
ROOT = PACKAGE.parent


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("facseg.data.cache", ["pytorch_lightning", "albumentations", "torch"]),
        ("facseg.data.check", ["pytorch_lightning", "albumentations", "torch"]),
        ("facseg.report", ["torch", "pytorch_lightning"]),
        ("facseg.runtime.record", ["torch"]),
    ],
)
def test_module_does_not_import(module, absent):
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "", f"import {module} loads {result.stdout.strip()}"


@pytest.mark.parametrize(
    "command", ["facseg.run", "facseg.evaluate", "facseg.study", "facseg.predict", "facseg.export", "facseg.demo"]
)
def test_help_and_config_errors_answer_before_the_deep_learning_stack_loads(command):
    """--help and a wrong override are answered by Hydra alone: torch and Lightning load once a config composes;
    the help of a command that does not train lists no training group."""
    for argv in (["--help"], ["modle=unet"]):
        code = (
            "import runpy, sys\n"
            f"sys.argv = ['{command}', *{argv!r}]\n"
            "try:\n"
            f"    runpy.run_module('{command}', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('LOADED', ' '.join(m for m in ('torch', 'pytorch_lightning') if m in sys.modules))\n"
        )
        result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True)
        assert result.stdout.strip().splitlines()[-1] == "LOADED", (argv, result.stdout[-500:], result.stderr[-500:])
        if argv == ["--help"] and command not in ("facseg.run", "facseg.study"):
            assert "capacity:" not in result.stdout and "hparams_search" not in result.stdout
    assert "modle" in result.stderr  # the config error was answered, naming the key


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def facseg_imports(path: Path, modules: set[str]) -> set[str]:
    """The facseg modules `path` imports anywhere in it (functions too): `from facseg.a import b` is facseg.a.b
    when that is a module, else facseg.a."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facseg"):
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found & modules


def test_no_import_cycle():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts}
    graph = {name: facseg_imports(path, set(paths)) - {name} for name, path in paths.items()}
    # A package's __init__ runs before its modules: importing facseg.a.b imports facseg.a and facseg too.
    for name in graph:
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {m for m in graph[name] if m not in parents}
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], target] if target in trail else [name, target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


# The stage folders, lowest first: a module imports from its own folder and those before it only.
LAYERS = ("runtime", "data", "metrics", "models", "scoring", "training", "report", "study")


def test_floor_plan_stage_folders_and_thin_commands():
    top = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__", "cli"))
    assert len(top) <= 10, f"{len(top)} modules directly in facseg/: {top}"
    stages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()} - {"conf"}
    assert stages == set(LAYERS)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    def layer(module: str) -> int | None:
        parts = module.split(".")
        return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None

    return sorted(
        f"{name} imports {target}"
        for name, targets in graph.items()
        if layer(name) is not None
        for target in targets
        if layer(target) is not None and layer(target) > layer(name)
    )


def test_no_lower_layer_imports_a_higher_one():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py") if "conf" not in p.relative_to(PACKAGE).parts}
    graph = {name: facseg_imports(path, set(paths)) for name, path in paths.items()}
    assert layer_violations(graph) == []
    # The check sees a violation: the data importing the scoring, or the metrics the models.
    assert layer_violations({"facseg.data.x": {"facseg.scoring.y"}, "facseg.metrics.a": {"facseg.models"}}) == [
        "facseg.data.x imports facseg.scoring.y",
        "facseg.metrics.a imports facseg.models",
    ]


def test_no_module_over_400_lines_or_named_like_the_standard_library():
    for folder in ("facseg", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            lines = len(path.read_text().splitlines())
            assert lines <= 400, f"{path.relative_to(ROOT)}: {lines} lines"
            if path.stem not in ("__init__", "__main__"):
                assert path.stem not in sys.stdlib_module_names, f"{path.relative_to(ROOT)} shadows the stdlib's"
