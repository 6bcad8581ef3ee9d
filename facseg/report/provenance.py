"""What produced a study's runs, said once (facseg.runtime.provenance records it per run): the package versions, the
lock, the precision and the device that all runs share, and the runs that differ from them, named. Speeds and
seconds vary from run to run without moving a number: they are summarised, not flagged."""

from __future__ import annotations

from collections import Counter
from typing import Any

from facseg.report.runs import Job

STAGES = ("training", "test")


def flattened(record: dict[str, Any]) -> dict[str, Any]:
    """The settings that move numbers, as `key: value` (packages and device entries by name)."""
    out = {"lock": record.get("lock"), "precision": record.get("precision")}
    out.update({f"{name}": version for name, version in (record.get("packages") or {}).items()})
    out.update({f"device {key}": value for key, value in (record.get("device") or {}).items()})
    return out


def provenance_section(jobs: list[Job]) -> str:
    """Markdown: per stage, the shared settings once, then every run that differs from them; '' when no run
    recorded any."""
    finished = [job for job in jobs if job.status == "ok" and job.metrics]
    if not any(job.provenance for job in finished):
        return ""
    lines = ["## What produced these runs", ""]
    for stage in STAGES:
        records = {job.name: job.provenance[stage] for job in finished if stage in job.provenance}
        if not records:
            continue
        settings = {name: flattened(record) for name, record in records.items()}
        keys = list(dict.fromkeys(key for found in settings.values() for key in found))
        shared = {key: Counter(str(found.get(key)) for found in settings.values()).most_common(1)[0][0] for key in keys}
        speeds = [next((v for k, v in r.items() if k.endswith("_gflops")), None) for r in records.values()]
        speeds = [s for s in speeds if s is not None]
        seconds = [r["seconds"] for r in records.values() if r.get("seconds") is not None]
        lines += [
            f"**{stage.capitalize()}** ({len(records)} of {len(finished)} runs recorded it): "
            + ", ".join(f"{key} {value}" for key, value in shared.items())
            + (f"; {min(speeds):g}-{max(speeds):g} GFLOP/s" if speeds else "")
            + (f"; {min(seconds):.0f}-{max(seconds):.0f} s a run" if seconds else "")
            + ".",
            "",
        ]
        differ = [
            (name, key, found.get(key))
            for name, found in settings.items()
            for key in keys
            if str(found.get(key)) != shared[key]
        ]
        if differ:
            lines += [f"Runs whose {stage} differs (their numbers may not be comparable to the others'):", ""]
            lines += ["| run | setting | this run | the others |", "|---|---|---|---|"]
            lines += [f"| {name} | {key} | {value} | {shared[key]} |" for name, key, value in differ]
            lines.append("")
    missing = [job.name for job in finished if not job.provenance]
    if missing:
        lines += [f"Recorded before provenance was kept (unknown): {', '.join(missing)}.", ""]
    return "\n".join(lines)
