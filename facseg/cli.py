"""The `facseg` command: `facseg <command> ARGS` is `python -m facseg.<module> ARGS`, argument for argument.

    facseg run model=segnet                  facseg evaluate ckpt_path=...       facseg predict ckpt_path=... input=...
    facseg run -m model=unet,segnet,pspnet   facseg report logs/multiruns/DIR   facseg export ckpt_path=...
    facseg check /path/to/LaPa               facseg prepare /path/to/LaPa CACHE  facseg run --cfg job | --help
    facseg study hydra.sweep.dir=DIR         (the fair comparison: tuning, seeds, ensembles, report)
    facseg demo "models=[A.ckpt,B.ckpt]"     (a local page: upload a photo, see it parsed; the `demo` extra)
    facseg score PRED_DIR TRUTH_ROOT --out FILE   (label maps made by anything, scored as a run's test)

Tab completion in bash: `eval "$(facseg -sc install=bash)"` (in ~/.bashrc to keep it): command names, then each
Hydra command's config groups and keys.
"""

from __future__ import annotations

import importlib
import os
import sys

# command -> the module whose main() it runs; the Hydra ones parse sys.argv themselves, the others take argv.
COMMANDS = {
    "run": "facseg.run",
    "study": "facseg.study.__main__",
    "evaluate": "facseg.evaluate",
    "predict": "facseg.predict",
    "export": "facseg.export",
    "report": "facseg.report",
    "check": "facseg.data.check",
    "prepare": "facseg.data.cache",
    "demo": "facseg.demo",
    "score": "facseg.score",
}
ARGPARSE = {"report", "check", "prepare", "score"}
HYDRA = [command for command in COMMANDS if command not in ARGPARSE]


def shell_completion(args: list[str]) -> int:
    """Hydra's bash completion, for one command of several: `-sc install=bash` prints the script for `facseg`; on
    TAB, bash runs `facseg -sc query=bash` with the typed line in COMP_LINE, which names the command: completed
    itself while it is being typed, then taken out of the line for that command's own (Hydra's) query."""
    words = os.environ.get("COMP_LINE", "").split(" ")
    command = "run"  # any Hydra command prints the same install script
    if any(arg.startswith("query=") for arg in args):
        if len(words) <= 2:  # the command word itself
            print(" ".join(c for c in COMMANDS if c.startswith(words[-1])))
            return 0
        if words[1] not in HYDRA:
            return 0  # argparse commands: no completion
        command = words[1]
        os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]])
    sys.argv = ["facseg", *args]
    importlib.import_module(COMMANDS[command]).main()
    return 0


def main(argv: list[str] | None = None) -> int | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-sc", "--shell-completion"):
        return shell_completion(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        usage = f"usage: facseg {{{','.join(COMMANDS)}}} ARGS  (each: facseg COMMAND --help)\n{__doc__}"
        if argv and argv[0] not in ("-h", "--help"):
            print(f"facseg: unknown command {argv[0]!r}\n{usage}", file=sys.stderr)
            return 2
        print(usage)
        return 0
    command, args = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[command])
    sys.argv = [f"facseg {command}", *args]  # what hydra.main parses, and argparse's program name
    if command in ARGPARSE:
        return module.main(args)
    module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
