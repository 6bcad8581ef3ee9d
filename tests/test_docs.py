"""Every command in the README, docs/ and the experiment records, checked as typed, and every local link.

Each `facseg` command composes with its overrides (every config group, key and value it names exists; a sweep is
composed once per value), each argparse command parses its arguments, each make target exists, each other command
runs (or, for W&B's network commands, its options exist). The commands that can run here in full are run by the
tests of their own features; those that need LaPa, a GPU or network are checked this far and no further.
"""

import argparse
import importlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

import facseg

ROOT = facseg.PROJECT_ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "experiments").rglob("README.md"))]
HYDRA_CONFIGS = {
    "facseg.run": "train",
    "facseg.study": "study",
    "facseg.evaluate": "evaluate",
    "facseg.predict": "predict",
    "facseg.export": "export",
    "facseg.demo": "demo",
}
ARGPARSE_MODULES = {"facseg.report", "facseg.data.check", "facseg.data.cache", "facseg.data.synthetic", "facseg.score"}


def documented_commands() -> list[tuple[str, str]]:
    """(page, command) for every line of every bash block, continuation lines joined, comments dropped."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words:
                    found.append((str(page.relative_to(ROOT)), shlex.join(words)))
    return found


COMMANDS = documented_commands()


def test_the_pages_have_commands_to_check():
    pages = {page for page, _ in COMMANDS}
    assert {"README.md", "docs/data.md", "docs/scale-out.md", "docs/usage.md", "docs/logging.md"} <= pages
    assert len(COMMANDS) > 30


def compose_each_point(config: str, args: list[str]) -> None:
    """Compose `config` with the overrides, once per value of each discrete sweep (the others at their first value);
    a search's interval is checked for its key only."""
    overrides = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
    searched = [o.key_or_group for o in overrides if o.is_sweep_override() and not o.is_discrete_sweep()]
    sweeps = {o.get_key_element(): list(o.sweep_string_iterator()) for o in overrides if o.is_discrete_sweep()}
    first = {key: values[0] for key, values in sweeps.items()}
    points = [first] + [{**first, key: value} for key, values in sweeps.items() for value in values[1:]]
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        for point in points:
            cfg = compose(config, overrides=[*fixed, *(f"{key}={value}" for key, value in point.items())])
            for key in searched:
                assert OmegaConf.select(cfg, key) is not None, f"{key}: no such key in {config}"


class Parsed(Exception):
    pass


def parse_only(module: str, argv: list[str], monkeypatch) -> argparse.Namespace:
    """The module's main() up to its argument parsing: an error in the arguments exits 2 with argparse's usage."""
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    with pytest.raises(Parsed) as parsed:
        importlib.import_module(module).main(argv)
    return parsed.value.args[0]


def run(words: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(words, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}: {c[:60]}" for p, c in COMMANDS])
def test_documented_command(page, command, monkeypatch):
    words = shlex.split(command)
    if words[0] == "eval":  # eval "$(facseg -sc install=bash)": the completion script it installs
        inner = shlex.split(re.fullmatch(r"\$\((.*)\)", words[1]).group(1))
        result = run([str(ROOT / inner[0]), *inner[1:]])
        assert result.returncode == 0 and "complete" in result.stdout, result.stderr[-2000:]
    elif words[0] == "make":
        targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
        assert words[1] in targets, f"{page}: make {words[1]}: no such target"
        assert run(["make", "-n", *words[1:]]).returncode == 0
    elif words[0] == ".venv/bin/wandb":  # needs network: its options must exist
        result = run([str(ROOT / words[0]), words[1], "--help"])
        options = [w.split("=")[0] for w in words[2:] if w.startswith("--")]
        assert result.returncode == 0 and all(o in result.stdout for o in options), result.stderr[-2000:]
    elif words[:2] == [".venv/bin/python", "-c"]:
        result = run([str(ROOT / words[0]), *words[1:]])
        assert result.returncode == 0, result.stderr[-2000:]
    elif words[:2] == [".venv/bin/python", "-m"] and words[2] in HYDRA_CONFIGS:
        compose_each_point(HYDRA_CONFIGS[words[2]], words[3:])
    elif words[:2] == [".venv/bin/python", "-m"] and words[2] in ARGPARSE_MODULES:
        parse_only(words[2], words[3:], monkeypatch)
    elif words[:3] == ["setsid", "nice", "-n"]:  # started in the background, in a session of its own
        test_documented_command(page, shlex.join(words[4 : words.index(">")]), monkeypatch)
    elif words[0] == "echo" and words[-2:] == [">", "/proc/$!/autogroup"]:  # that session's own nice
        session = subprocess.Popen(["sleep", "60"], start_new_session=True)
        try:
            autogroup = Path(f"/proc/{session.pid}/autogroup")
            if not autogroup.exists():
                pytest.skip("this kernel has no autogroup scheduling: nothing to set")
            autogroup.write_text(words[1])
            assert autogroup.read_text().split()[-2:] == ["nice", words[1]]
        finally:
            session.kill()
            session.wait()
    else:
        pytest.fail(f"{page}: no check for {command!r}: add one here")


def test_a_wrong_override_in_a_page_would_fail(monkeypatch):
    """The checks above can fail: a misspelt key (also behind setsid), a missing config option and a bad flag are
    caught."""
    with pytest.raises(Exception, match="modle"):
        compose_each_point("train", ["-m", "modle=unet,segnet"])
    with pytest.raises(Exception, match="resnet"):
        compose_each_point("train", ["model=unet,resnet"])
    with pytest.raises(SystemExit):
        parse_only("facseg.data.check", ["/path/to/LaPa", "--frmat", "celebamask"], monkeypatch)
    with pytest.raises(Exception, match="stduy"):  # a command started in a session of its own is checked as one
        test_documented_command("page", "setsid nice -n 19 .venv/bin/python -m facseg.study stduy.seeds=2 > o &", None)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.relative_to(ROOT)}: {target}: no such file"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.*)$", file.read_text(), re.M)
            assert anchor in {github_anchor(h) for h in headings}, (
                f"{page.relative_to(ROOT)}: {target}: no such heading"
            )


def test_configuration_page_lists_every_config_group():
    groups = {
        str(path.relative_to(facseg.CONFIG_DIR))
        for path in facseg.CONFIG_DIR.rglob("*")
        if path.is_dir() and path.name != "__pycache__"
    }
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [group for group in sorted(groups) if f"`{group}/`" not in page]
    assert len(groups) > 15 and not missing, f"docs/configuration.md lacks {missing}"
