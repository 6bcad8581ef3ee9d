"""The experiment records quote their reports: every table in a record's README is cut from the report beside it
(report.md unless a `<!-- from FILE -->` line says another), with the report's row labels and column headers, and
each cell as the report has it. So no figure of a record is typed by hand, and a regenerated report that moves a
figure fails here until the README is re-read from it. A table that no report holds (a published figure, a time)
says so on the line above it: `<!-- not from a report: why -->`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import facseg

RECORDS = sorted((facseg.PROJECT_ROOT / "experiments").glob("*/README.md"))
# A record whose report is being regenerated (issue 25) says so in a banner; its tables are checked once it goes.
BANNER = re.compile(r"^> \*\*(Withdrawn readings|Being regenerated)", re.M)
SOURCE = re.compile(r"^<!-- (from (?P<file>\S+)|not from a report: .+) -->$")


@dataclass
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]
    line: int  # of its header, from 1
    source: str | None  # the file it is cut from; None: not from a report


def cells(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in line.strip().strip("|").split("|"))


def tables(text: str, default: str | None = "report.md") -> list[Table]:
    """The markdown tables of `text`, each with the source its marker line names (`default` without one)."""
    lines, found = text.splitlines(), []
    for i, line in enumerate(lines[:-1]):
        if line.startswith("|") and re.fullmatch(r"\|( *:?-+:? *\|)+", lines[i + 1].strip()):
            above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            marker = SOURCE.match(above.strip())
            source = marker.group("file") if marker else default  # None after "not from a report"
            rows = []
            for row in lines[i + 2 :]:
                if not row.startswith("|"):
                    break
                rows.append(cells(row))
            found.append(Table(cells(line), rows, i + 1, source))
    return found


def mismatches(readme: str, reports: dict[str, str], default: str | None = "report.md") -> list[str]:
    """Every README table cell that its report does not hold as it is, named by line, row and column."""
    problems = []
    for table in tables(readme, default):
        if table.source is None:
            continue
        if table.source not in reports:
            problems.append(f"line {table.line}: the table's source {table.source} is not beside the README")
            continue
        candidates = [t for t in tables(reports[table.source], None) if set(table.headers) <= set(t.headers)]
        for n, row in enumerate(table.rows):
            line = table.line + 2 + n
            # The same label can head rows of several report tables (per-class F1, clean and occluded): any one
            # that holds every cell will do.
            quoted = [
                {h: r[t.headers.index(h)] for h in table.headers}
                for t in candidates
                for r in t.rows
                if len(r) == len(t.headers)
            ]
            quoted = [q for q in quoted if q[table.headers[0]] == row[0]]
            if not quoted:
                problems.append(f"line {line}: no table of {table.source} has the row {row[0]!r} under {table.headers}")
            elif dict(zip(table.headers, row)) not in quoted:
                problems += [
                    f"line {line}, {row[0]!r}, {header!r}: {cell!r}, {table.source} has {quoted[0][header]!r}"
                    for header, cell in zip(table.headers, row)
                    if cell != quoted[0][header]
                ]
    return problems


@pytest.mark.parametrize("readme", RECORDS, ids=lambda p: p.parent.name)
def test_a_records_tables_are_cut_from_its_report(readme: Path):
    text = readme.read_text()
    if BANNER.search(text):
        pytest.skip(f"{readme.parent.name}: its report is being regenerated (the banner); tables checked after")
    reports = {p.name: p.read_text() for p in readme.parent.glob("*.md") if p.name != "README.md"}
    problems = mismatches(text, reports)
    assert not problems, "\n".join(problems)


def test_the_records_index_quotes_tables_cut_from_their_records():
    """experiments/README.md quotes a record's table under a `<!-- from experiments/NAME/report.md -->` line; its
    other tables are its own."""
    readme = (facseg.PROJECT_ROOT / "experiments" / "README.md").read_text()
    sources = {t.source for t in tables(readme, None) if t.source}
    assert sources, "experiments/README.md quotes no record's table: its readings have lost their marker line"
    reports = {s: (facseg.PROJECT_ROOT / s).read_text() for s in sources if (facseg.PROJECT_ROOT / s).is_file()}
    problems = mismatches(readme, reports, default=None)
    assert not problems, "\n".join(problems)


def test_a_figure_typed_otherwise_than_the_report_is_caught():
    report = (
        "## Results\n\n| model | seeds | mean F1 | RMSE |\n|---|---|---|---|\n| unet | 5 | 92.5 [92.1, 92.9] | 0.06 |\n"
    )
    quoted = "| model | mean F1 |\n|---|---|\n| unet | {} |\n"
    assert mismatches(quoted.format("92.5 [92.1, 92.9]"), {"report.md": report}) == []
    assert mismatches(quoted.format("92.5 [92.1, 93.0]"), {"report.md": report}) == [
        "line 3, 'unet', 'mean F1': '92.5 [92.1, 93.0]', report.md has '92.5 [92.1, 92.9]'"
    ]
    renamed = quoted.format("92.5 [92.1, 92.9]").replace("| unet |", "| U-Net |")
    assert "no table of report.md has the row 'U-Net'" in mismatches(renamed, {"report.md": report})[0]
    other_header = "| model | F1 |\n|---|---|\n| unet | 92.5 |\n"
    assert "no table of report.md" in mismatches(other_header, {"report.md": report})[0]
    elsewhere = "<!-- from report-unmatched.md -->\n" + quoted.format("92.5 [92.1, 92.9]")
    assert "report-unmatched.md is not beside" in mismatches(elsewhere, {"report.md": report})[0]
    two_tables = (
        report + "\n| model | skin |\n|---|---|\n| unet | 95.0 |\n\n| model | skin |\n|---|---|\n| unet | 80.1 |\n"
    )
    occluded = "| model | skin |\n|---|---|\n| unet | 80.1 |\n"  # the second table's row, under the same label
    assert mismatches(occluded, {"report.md": two_tables}) == []
    assert mismatches(occluded.replace("80.1", "80.2"), {"report.md": two_tables}) == [
        "line 3, 'unet', 'skin': '80.2', report.md has '95.0'"
    ]
    published = "<!-- not from a report: published figures -->\n" + quoted.format("91.0")
    assert mismatches(published, {"report.md": report}) == []
