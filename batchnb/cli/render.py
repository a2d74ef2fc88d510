"""How the CLI prints results: az's ``--query`` (JMESPath) and ``-o json|jsonc|yaml|tsv|table|none``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, TextIO

from ..errors import UsageError

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


def _rows(data: Any) -> list[Any]:
    return data if isinstance(data, list) else [data]


def render(result: Any, output: str, query: str | None, out: TextIO) -> None:
    """Print ``result`` in the requested format."""
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
        for row in _rows(data):
            if isinstance(row, dict):
                out.write("\t".join(_scalar(v) for v in row.values() if not isinstance(v, dict | list)) + "\n")
            elif isinstance(row, list):  # --query "[].[name, version]": one tab-separated line per item
                out.write("\t".join(_scalar(v) for v in row) + "\n")
            else:
                out.write(_scalar(row) + "\n")
    else:
        _table(_rows(data), out)


def _table(rows: list[Any], out: TextIO) -> None:
    if not rows:
        return
    if not all(isinstance(r, dict) for r in rows):
        for row in rows:
            out.write(_scalar(row) + "\n")
        return
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in columns and not isinstance(value, dict | list):
                columns.append(key)
    cells = [[_scalar(r.get(c)) for c in columns] for r in rows]
    headers = [c.replace("_", " ").title().replace(" ", "") for c in columns]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
