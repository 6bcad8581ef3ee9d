"""The study's own sections of its report: the tuning (the same budget per architecture, the chosen settings) and
the ensembles' members and fitted weights. The rest of the report is facseg.report's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facseg.report.runs import Job
from facseg.report.tables import md_header, md_row
from facseg.study.plan import CHOSEN_FILE, StudyPlan


def tuning_section(
    plan: StudyPlan, space: dict[str, tuple[float, float, bool]], chosen: dict[str, Any], jobs: list[Job], time: str
) -> str:
    """`space`: key -> (low, high, log); `time`: how long each phase took."""
    s, cfg = plan.settings, plan.cfg
    epochs = min(s.search_epochs, cfg.trainer.max_epochs)
    described = ", ".join(
        f"`{k}` in [{low:g}, {high:g}]{' (log)' if log else ''}" for k, (low, high, log) in space.items()
    )
    lines = [
        "## Tuning: the same budget for each architecture",
        "",
        f"Optuna (TPE, sampler seed {s.sampler_seed}), {s.trials} trials of {epochs} epochs per architecture, "
        f"seed {cfg.seed}, scored on `{cfg.optimized_metric}` (validation only); the chosen settings "
        f"retrained with seeds {', '.join(map(str, plan.seeds()))} for {cfg.trainer.max_epochs} epochs. "
        f"Space: {described}. Chosen settings (also in `{CHOSEN_FILE}`):",
        "",
        *md_header(["model", "trial", "val score", "failed trials", *(f"`{k}`" for k in space)]),
    ]
    for model, best in chosen.items():
        if best is None:
            lines.append(md_row([model, "every trial failed", "", "", *("" for _ in space)]))
            continue
        params = [f"{best['params'][k]:.3g}" for k in space]
        lines.append(
            md_row([model, str(best["trial"]), f"{100 * best['val']:.1f}", str(best["failed_trials"]), *params])
        )
    device = next((j.metrics["cost/device"] for j in jobs if "cost/device" in j.metrics), "this machine")
    lines += ["", f"Time on {device}: {time}.", ""]
    return "\n".join(lines)


def ensemble_section(jobs: list[Job]) -> str:
    fitted = [j for j in jobs if j.metrics and j.metrics.get("weights") and "(fitted)" in j.label]
    if not fitted:
        return ""
    lines = [
        "## Ensembles",
        "",
        "Rows `A x N seeds`: one architecture's seeds together; `A+B+C`: the architectures together, one "
        "ensemble per retrained seed (the seeds column counts them). The mean of the members' softmax "
        "probabilities, each member warped onto the photo first; `(fitted)`: weights that maximise the "
        "likelihood of the validation pixels (never test):",
        "",
        *md_header(["ensemble", "members", "fitted weights"]),
    ]
    for job in fitted:
        members = ", ".join(Path(p).parts[-3] for p in job.metrics["checkpoints"])
        weights = ", ".join(f"{w:.2f}" for w in job.metrics["weights"])
        lines.append(md_row([job.label, members, weights]))
    return "\n".join([*lines, ""])
