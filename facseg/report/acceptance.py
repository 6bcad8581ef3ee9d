"""`make acceptance`'s promise: the main job's seed-0 numbers again, to the last digit, with the same lock and
precision on a CPU of the same family (facseg.runtime.provenance.cpu_family) with as many torch threads.

A record is the main job's every numeric metric per model, with what produced them (the lock's digest, the package
versions, the precision, the CPU, its family and torch's threads). `experiments/acceptance/<family>.json` holds one
committed record per CPU family it was made on; a new record within the promise must equal it in every
number, and where the lock or the machine differs, the comparison names what differs rather than failing on
numbers no one promised. A GPU is not bit-exact from run to run (cuDNN picks its algorithms at run time): no record
is made on one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import facseg
from facseg.runtime.record import METRICS_FILE, read_json, read_provenance

ARTEFACTS = facseg.PROJECT_ROOT / "experiments" / "acceptance"
COMMAND = "python -m facseg.run -m model=unet,segnet,pspnet"
MODELS = ("unet", "segnet", "pspnet")
# What the promise is made for: the same lock, precision, CPU family and thread count (a reduction split among more
# threads sums in another order). The processor's model name within a family is reported, not bound.
PROMISED = ("lock", "precision", "family", "torch_threads")
SHOWN = 12  # differing numbers listed before the rest are counted


def sweep_record(sweep: Path, minutes: float) -> dict[str, Any]:
    """The main job's record from its sweep folder: per model, every number metrics.json holds and the precision
    it was trained in (`auto` chooses per net)."""
    numbers, precision, produced = {}, {}, None
    for model in MODELS:
        (job,) = Path(sweep).glob(f"*_{model}")
        metrics = read_json(job / METRICS_FILE)
        numbers[model] = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        training = read_provenance(job).get("training")
        if training is None:
            raise FileNotFoundError(f"{job}: the job recorded no provenance (provenance.json)")
        precision[model], produced = training["precision"], produced or training
    return {
        "command": COMMAND,
        "family": produced["device"].get("cpu_family"),
        "cpu": produced["device"].get("cpu"),
        "torch_threads": produced["device"].get("torch_threads"),
        "lock": produced["lock"],
        "packages": produced["packages"],
        "precision": precision,
        "minutes": round(minutes, 1),
        "numbers": numbers,
    }


def artefact_path(family: str) -> Path:
    return ARTEFACTS / f"{family}.json"


def differing_numbers(here: dict, artefact: dict) -> list[str]:
    """One line per number that is not the artefact's to the last digit (or is on one side only)."""
    lines = []
    for model in MODELS:
        mine, theirs = here["numbers"].get(model, {}), artefact["numbers"].get(model, {})
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):  # metrics.json holds no NaN
                lines.append(f"{model} {key}: {theirs.get(key, 'absent')!r} recorded, {mine.get(key, 'absent')!r} here")
    return lines


def differing_setup(here: dict, artefact: dict) -> list[str]:
    """What produced the two that differs: the lock, a package, the precision, the processor, torch's threads."""
    lines = [
        f"{key}: {artefact.get(key)!r} recorded, {here.get(key)!r} here"
        for key in (*PROMISED, "cpu")
        if artefact.get(key) != here.get(key)
    ]
    packages = sorted(set(here["packages"]) | set(artefact["packages"]))
    lines += [
        f"{name}: {artefact['packages'].get(name)} recorded, {here['packages'].get(name)} here"
        for name in packages
        if artefact["packages"].get(name) != here["packages"].get(name)
    ]
    return lines


def compare(here: dict, artefact: dict | None) -> tuple[bool, str]:
    """(whether the promise holds, what to tell the user). Within the promise (PROMISED all equal) a single
    differing digit fails; outside it the differences are named, not failed."""
    if artefact is None:
        known = sorted(p.stem for p in ARTEFACTS.glob("*.json"))
        return True, (
            f"no record for this CPU family ({here['family']}; recorded: {', '.join(known) or 'none'}): nothing "
            "promised here. This run's record can become the family's: see docs/reliability.md#the-same-numbers."
        )
    setup, numbers = differing_setup(here, artefact), differing_numbers(here, artefact)
    bound = all(here.get(key) == artefact.get(key) for key in PROMISED)
    listed = numbers[:SHOWN] + ([f"... and {len(numbers) - SHOWN} more"] if len(numbers) > SHOWN else [])
    count = sum(len(v) for v in here["numbers"].values())
    head = (
        f"the same as {artefact_path(here['family']).relative_to(facseg.PROJECT_ROOT)} in all {count} numbers"
        if not numbers
        else f"{len(numbers)} of {count} numbers differ from the record of {here['family']}"
    )
    text = "\n".join(
        [head]
        + ([f"what differs in what produced them ({'within' if bound else 'outside'} the promise):"] if setup else [])
        + [f"  {line}" for line in setup]
        + [f"  {line}" for line in listed]
    )
    return (not numbers or not bound), text
