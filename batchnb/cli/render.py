r"""How the CLI prints results: az's ``--query`` (JMESPath) and ``-o json|jsonc|yaml|tsv|table|none``.

Machine formats keep times as ISO 8601; ``-o table`` is for people (:mod:`.tables`).

``-o tsv`` writes one line per record, its fields separated by tabs, as az does. Unlike az, a
field's backslashes, tabs, newlines and carriage returns are written as ``\\``, ``\t``, ``\n`` and
``\r``, so that a failed job's traceback cannot split its record; a value without them is written
unchanged. A lone value (``--query name``) is written as it is, as az does, so that a multi-line
value such as a dry run's ``preview`` prints its lines.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TextIO

from ..errors import UsageError
from .tables import print_table

FORMATS = ("json", "jsonc", "yaml", "tsv", "table", "none")


def _plain(value: Any) -> Any:
    """Make a result JSON-ready: entities become dicts, ``*_at`` epoch floats become ISO-8601 (UTC)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and key.startswith("_"):
                continue
            if isinstance(key, str) and key.endswith("_at") and isinstance(item, int | float):
                item = dt.datetime.fromtimestamp(item, dt.timezone.utc).isoformat(timespec="seconds")
            out[key] = _plain(item)
        return out
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def check_query(query: str | None) -> None:
    """Refuse a malformed JMESPath ``--query`` before the command runs, not after it changed things."""
    if not query:
        return
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(query)
    except JMESPathError as exc:
        raise UsageError(f"--query {query!r}: {exc}") from None


def apply_query(result: Any, query: str | None) -> Any:
    """Apply a JMESPath ``--query`` as az does; a bad expression is a usage error."""
    data = _plain(result)
    if not query:
        return data
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, data)
    except JMESPathError as exc:
        raise UsageError(f"--query {query!r}: {exc}") from None


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _field(value: Any) -> str:
    """One field of a ``-o tsv`` line: never a tab or a line break that would split the record."""
    return _scalar(value).translate(_TSV_ESCAPES)


def _rows(data: Any) -> list[Any]:
    return data if isinstance(data, list) else [data]


def render(result: Any, output: str, query: str | None, out: TextIO, kind: str | None = None) -> None:
    """Print ``result`` in the requested format.

    Args:
        result: what the command returned.
        output: one of :data:`FORMATS`.
        query: a JMESPath expression, or ``None``.
        out: where to print.
        kind: the CLI group of the command (``job``, ``model``, ...): it picks the columns of ``-o table``.
    """
    if output not in FORMATS:
        raise UsageError(f"-o/--output {output!r}: choose one of {', '.join(FORMATS)}")
    data = apply_query(result, query)
    if output == "none" or (data is None and result is None):
        return
    if output in ("json", "jsonc"):
        out.write(json.dumps(data, indent=2, default=str) + "\n")
    elif output == "yaml":
        import yaml

        out.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    elif output == "tsv":
        # az: one line per item; the scalar fields of an object, tab-separated, in order.
        if not isinstance(data, dict | list):
            out.write(_scalar(data) + "\n")  # a lone value: no record to split
            return
        for row in _rows(data):
            if isinstance(row, dict):
                out.write("\t".join(_field(v) for v in row.values() if not isinstance(v, dict | list)) + "\n")
            elif isinstance(row, list):  # --query "[].[name, version]": one tab-separated line per item
                out.write("\t".join(_field(v) for v in row) + "\n")
            else:
                out.write(_field(row) + "\n")
    else:
        print_table(data, kind, query, out)
