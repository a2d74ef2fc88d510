"""``-o table``: what a person reads in a terminal, one line per record, within the terminal's width.

A list shows a few columns chosen per kind of record (a job's name, status, endpoint/deployment,
progress, start and duration); the details are in ``show``, whose single record prints as a
key/value table. A ``--query`` chooses the columns itself, as in az. Every cell is one line: a
multi-line value (an error's traceback) keeps its first line, and a cell too long for its column
ends in an ellipsis. Times are local and human (:mod:`.humanize`).

The width is the terminal's (or ``$COLUMNS``); piped, it is 100, and the output is plain text.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from ..display import error_summary
from .humanize import duration, parse_iso, when

PIPED_WIDTH = 100
KEEP, LATE, FIRST = 0, 1, 2  # a column's Column.shrink
_GAP = 2  # spaces between columns
_MIN_WIDTH = 10  # a column is not cut below this (or its header) unless nothing else fits

_STATUS_STYLES = {
    "Completed": "green",
    "Failed": "red",
    "Canceled": "bright_black",
    "CancelRequested": "yellow",
    "Interrupted": "yellow",
    "Running": "blue",
    "Finalizing": "blue",
}


def cell(value: Any) -> str:
    """One table cell: ``""`` for nothing, a local human time for an ISO-8601 instant, the first line of a
    multi-line text (with ``…`` to say there is more), lists of scalars joined, other structures as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(cell(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "), default=str)
    text = str(value)
    moment = parse_iso(text)
    if moment is not None:
        return when(moment)
    if "\n" in text.strip():
        return _one_line(text)
    return text.strip()


def _one_line(text: str) -> str:
    """A multi-line text in one line: its first line, and the exception of a traceback in it (the
    first line names where a job failed, the exception why); ``…`` says that there is more."""
    return f"{error_summary(text)} …"


@dataclass(frozen=True)
class Column:
    """A column of a kind's list view.

    Attributes:
        header: its title.
        value: the cell of a record (a JSON-ready dict).
        shrink: when it is cut if the table is too wide: :data:`FIRST` (paths, descriptions),
            :data:`LATE` (names, which people copy) or :data:`KEEP` (short facts: a status, a time).
        fields: the dotted fields it shows, left out of ``show``'s other rows.
    """

    header: str
    value: Callable[[dict[str, Any]], str]
    shrink: int = 0
    fields: tuple[str, ...] = ()


def _field(path: str) -> Callable[[dict[str, Any]], str]:
    def get(record: dict[str, Any]) -> str:
        value: Any = record
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return cell(value)

    return get


def _col(header: str, path: str, shrink: int = KEEP) -> Column:
    return Column(header, _field(path), shrink, (path,))


def _job_target(job: dict[str, Any]) -> str:
    if job.get("endpoint_name"):
        return f"{job['endpoint_name']}/{job.get('deployment_name') or ''}"
    return ""


def _job_progress(job: dict[str, Any]) -> str:
    """``42/60`` mini-batches done (``2/4 steps`` of a pipeline), ``, 3 failed`` when any failed."""
    progress = job.get("progress") or {}
    if "mini_batches" in progress:
        counts, done, unit = progress["mini_batches"], "done", ""
    elif "steps" in progress:
        counts, done, unit = progress["steps"], "completed", " steps"
    else:
        return ""
    if not counts.get("total"):
        return ""  # not planned yet
    text = f"{counts.get(done, 0)}/{counts['total']}{unit}"
    return text + (f", {counts['failed']} failed" if counts.get("failed") else "")


def _job_duration(job: dict[str, Any]) -> str:
    if not job.get("started_at"):
        return ""
    return duration((job.get("progress") or {}).get("elapsed_s"))


def _deployment_runs(deployment: dict[str, Any]) -> str:
    resolved = deployment.get("resolved") or {}
    return cell(resolved.get("model") or resolved.get("component_ref") or deployment.get("component"))


def _agent(compute: dict[str, Any]) -> str:
    """``compute show``'s agent in a few words: pid, workers, jobs, memory ("" when none runs)."""
    agent = compute.get("agent")
    if not agent:
        return ""
    jobs = f"{len(agent['running_jobs'])} running, {len(agent['queued_jobs'])} queued"
    return f"pid {agent['pid']}, {agent['workers']} workers, {jobs}, {agent['resident_memory_mb']:.0f} MB"


def _instances(compute: dict[str, Any]) -> str:
    low, high = compute.get("min_instances"), compute.get("max_instances")
    return "" if high is None else f"{low or 0}-{high}"


JOB = (
    _col("Name", "name", LATE),
    _col("Status", "status"),
    Column("Endpoint/Deployment", _job_target, FIRST, ("endpoint_name", "deployment_name")),
    Column("Progress", _job_progress),
    _col("Started", "started_at"),
    Column("Duration", _job_duration),
)

# Per CLI group: the columns of its list, and the fields a record must have for them to apply
# (a dry run or a check report under the same group is shown as it is).
VIEWS: dict[str, tuple[frozenset[str], tuple[Column, ...]]] = {
    "batch-endpoint": (
        frozenset({"name", "auth_mode"}),
        (
            _col("Name", "name", LATE),
            _col("Default deployment", "defaults.deployment_name", FIRST),
            _col("Deployments", "deployments", FIRST),
            _col("Created", "created_at"),
            _col("Description", "description", FIRST),
        ),
    ),
    "batch-deployment": (
        frozenset({"name", "endpoint_name", "is_default"}),
        (
            _col("Name", "name", LATE),
            _col("Endpoint", "endpoint_name", FIRST),
            _col("Default", "is_default"),
            Column("Model/Component", _deployment_runs, FIRST),
            _col("Compute", "resolved.compute", FIRST),
            _col("Updated", "updated_at"),
        ),
    ),
    "model": (
        frozenset({"name", "version"}),
        (
            _col("Name", "name", LATE),
            _col("Version", "version"),
            _col("Type", "type"),
            _col("Created", "created_at"),
            Column("Source", lambda m: cell(m.get("source_path") or m.get("path")), FIRST),
        ),
    ),
    "data": (
        frozenset({"name", "version"}),
        (
            _col("Name", "name", LATE),
            _col("Version", "version"),
            _col("Type", "type"),
            _col("Created", "created_at"),
            _col("Path", "path", FIRST),
        ),
    ),
    "environment": (
        frozenset({"name", "version"}),
        (
            _col("Name", "name", LATE),
            _col("Version", "version"),
            _col("Created", "created_at"),
            Column("Image", lambda e: cell(e.get("image") or e.get("conda_file") or e.get("pip_requirements")), FIRST),
        ),
    ),
    "component": (
        frozenset({"name", "version"}),
        (
            _col("Name", "name", LATE),
            _col("Version", "version"),
            _col("Type", "type"),
            _col("Created", "created_at"),
            _col("Description", "description", FIRST),
        ),
    ),
    "compute": (
        frozenset({"name", "type", "is_default"}),
        (
            _col("Name", "name", LATE),
            _col("Type", "type"),
            _col("Default", "is_default"),
            Column("Instances", _instances),
            Column("Workers", lambda c: cell(c.get("max_workers") or c.get("workers_per_host"))),
            Column("Agent", _agent),
            _col("Hosts", "hosts", FIRST),
        ),
    ),
    "datastore": (
        frozenset({"name", "type", "path"}),
        (
            _col("Name", "name", LATE),
            _col("Type", "type"),
            _col("Default", "is_default"),
            _col("Path", "path", FIRST),
        ),
    ),
}


def _is_job(record: Any) -> bool:
    # Jobs come from several groups (job list, batch-endpoint invoke and list-jobs, ...).
    return isinstance(record, dict) and {"name", "status", "progress"} <= record.keys()


def view_for(kind: str | None, rows: list[Any]) -> tuple[Column, ...] | None:
    """The columns for these records of a command of group ``kind``, or ``None`` to show their fields."""
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    if all(_is_job(r) for r in rows):
        return JOB
    needed, columns = VIEWS.get(kind or "", (frozenset(), ()))
    if columns and all(needed <= r.keys() for r in rows):
        return columns
    return None


def _header(key: str) -> str:
    return key.replace("_", " ").title().replace(" ", "")


def _scalar_columns(rows: list[dict[str, Any]]) -> tuple[Column, ...]:
    """az's table of records without a view: their scalar fields, in order, all cut alike."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not isinstance(v, dict | list)]
    return tuple(Column(_header(k), _value_of(k), FIRST) for k in keys)


def _value_of(key: str) -> Callable[[dict[str, Any]], str]:
    return lambda record: cell(record.get(key))


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """The leaves of a record as ``(dotted.key, cell)``, skipping empty ones."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}.{i}")
    else:
        text = cell(value)
        if text:
            yield prefix, text


def record_pairs(record: dict[str, Any], view: tuple[Column, ...] | None) -> list[tuple[str, str]]:
    """One record for a key/value table: its view's cells first, then every other field, dotted."""
    columns = view or ()
    shown = {field for c in columns for field in c.fields}
    pairs = [(c.header.lower(), c.value(record)) for c in columns]
    return [(k, v) for k, v in pairs if v] + [(k, v) for k, v in _flatten(record) if k not in shown]


def fit(natural: list[int], shrink: list[int], minimum: list[int], width: int) -> list[int]:
    """Column widths within ``width``.

    The widest column that may shrink first loses a character at a time, down to its minimum; then
    the columns that shrink late (names); then, if nothing else is left, any column, down to 3.

    Args:
        natural: the widest cell (or header) of each column.
        shrink: each column's :data:`FIRST`, :data:`LATE` or :data:`KEEP`.
        minimum: how narrow a column may get before the last resort.
        width: the width of the table, gaps included.
    """
    widths = list(natural)
    excess = sum(widths) + _GAP * (len(widths) - 1) - width
    floors = [
        [m if s >= level else n for m, s, n in zip(minimum, shrink, natural, strict=True)] for level in (FIRST, LATE)
    ]
    for floor in [*floors, [3] * len(widths)]:
        while excess > 0:
            cuttable = [i for i, w in enumerate(widths) if w > floor[i]]
            if not cuttable:
                break
            widest = max(cuttable, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    return widths


def terminal_width() -> int:
    """``$COLUMNS``, else the terminal's width, else (piped) :data:`PIPED_WIDTH`."""
    return shutil.get_terminal_size((PIPED_WIDTH, 24)).columns


def write(headers: list[str] | None, cells: list[list[str]], shrink: list[int], out: TextIO) -> None:
    """Print rows of one-line cells as a table that fits the width: a header and a rule of dashes
    (unless ``headers`` is ``None``), then the rows. Colours (a bold header, the status) only on a
    terminal; piped, the text is plain.
    """
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    tty = out.isatty() if hasattr(out, "isatty") else False
    width = terminal_width()
    titles = headers or [""] * len(shrink)
    natural = [max([cell_len(h), *(cell_len(row[i]) for row in cells)]) for i, h in enumerate(titles)]
    minimum = [min(n, max(_MIN_WIDTH, len(h))) for n, h in zip(natural, titles, strict=True)]
    widths = fit(natural, shrink, minimum, width)
    table = Table(box=None, show_header=False, show_edge=False, pad_edge=False, padding=(0, _GAP // 2))
    for w in widths:
        table.add_column(width=w, no_wrap=True, overflow="ellipsis")
    if headers:
        table.add_row(*(Text(h, style="bold") for h in headers))
        table.add_row(*("-" * w for w in widths))
    status = headers.index("Status") if headers and "Status" in headers else -1
    for row in cells:
        table.add_row(*(Text(c, style=_STATUS_STYLES.get(c, "") if i == status else "") for i, c in enumerate(row)))
    console = Console(
        file=out, width=width, force_terminal=tty, color_system="auto" if tty else None, highlight=False, emoji=False
    )
    # rich pads the last column to its width: capture, then drop the trailing blanks of each line.
    with console.capture() as captured:
        console.print(table)
    out.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def print_table(data: Any, kind: str | None, query: str | None, out: TextIO) -> None:
    """``-o table`` of a command's result (already JSON-ready and queried).

    Args:
        data: a list of records (or of query results), or one record (``show``).
        kind: the CLI group that produced it, which picks the columns of a list.
        query: the user's ``--query``, if any: then its fields are the columns, as in az.
        out: where to print.
    """
    if isinstance(data, dict) and not query and {"agreement", "disagreements"} <= data.keys():
        _print_comparison(data, out)
        return
    if isinstance(data, dict) and not query:  # one record: a key/value table
        pairs = record_pairs(data, view_for(kind, [data]))
        write(None, [[k, v] for k, v in pairs], [KEEP, FIRST], out)
        return
    rows = data if isinstance(data, list) else [data]
    if not rows:
        return
    if all(isinstance(r, list) for r in rows):  # --query "[].[name, status]"
        n = max(len(r) for r in rows)
        cells = [[cell(r[i]) if i < len(r) else "" for i in range(n)] for r in rows]
        write([f"Column{i + 1}" for i in range(n)], cells, [FIRST] * n, out)
        return
    if not all(isinstance(r, dict) for r in rows):
        for row in rows:
            out.write(cell(row) + "\n")
        return
    columns = (None if query else view_for(kind, rows)) or _scalar_columns(rows)
    write([c.header for c in columns], [[c.value(r) for c in columns] for r in rows], [c.shrink for c in columns], out)


def _print_comparison(data: dict[str, Any], out: TextIO) -> None:
    """``batch-endpoint compare -o table``: the summary as key/value pairs, then the disagreements."""
    summary = {k: v for k, v in data.items() if k not in ("disagreements", "outputs")}
    # The charts' data (histograms, label pairs) is for the notebook and the sidebar; -o json keeps it.
    summary["columns"] = {
        col: {k: v for k, v in stats.items() if k not in ("histogram", "pairs")}
        for col, stats in data.get("columns", {}).items()
    }
    write(None, [[k, v] for k, v in record_pairs(summary, None)], [KEEP, FIRST], out)
    rows = data["disagreements"]
    if not rows:
        return
    out.write(f"\nDisagreements ({len(rows)} shown of {data['rows_disagreeing']} row(s)):\n")
    keys = list(rows[0].keys())
    folder = str(data.get("input") or "").rstrip("/") + "/"

    def shown(record: dict[str, Any], key: str) -> str:
        value = record.get(key)
        if key == "source_file" and isinstance(value, str):  # within the input folder: its relative path
            return value.removeprefix(folder)
        return cell(value)

    cells = [[shown(r, k) for k in keys] for r in rows]
    headers = [
        _header(k) if k in ("source_file", "source_row", "column") else k for k in keys
    ]  # the others: deployments
    write(headers, cells, [FIRST, KEEP, KEEP, LATE, LATE], out)
