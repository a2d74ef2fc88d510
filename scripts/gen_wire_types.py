#!/usr/bin/env python3
"""Generate ``labextension/src/wire.ts`` (the sidebar's TypeScript types) from the REST API's wire models.

The source of truth is :func:`batchnb.server.models.api_schema` (the JSON Schema that ``GET
/batchnb/api/schema`` serves, built from the pydantic request and response models). This script
takes its ``$defs``, drops the per-property ``title`` keywords (else json-schema-to-typescript
names a type after every property: ``Name``, ``Name1``, ...), and compiles them with the npm
package ``json-schema-to-typescript`` (pinned in ``labextension/yarn.lock``; ``jlpm install`` in
``labextension/`` first).

    python scripts/gen_wire_types.py           # rewrite labextension/src/wire.ts
    python scripts/gen_wire_types.py --check   # exit 1 if it is out of date (tests/test_wire_types.py)
"""

from __future__ import annotations

import argparse
import difflib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LABEXT = ROOT / "labextension"
TARGET = LABEXT / "src" / "wire.ts"
COMPILER = LABEXT / "scripts" / "gen-types.mjs"
PACKAGE = LABEXT / "node_modules" / "json-schema-to-typescript"
BANNER = (
    "/* eslint-disable */\n"
    "/**\n"
    " * GENERATED FILE, DO NOT EDIT. The wire types of batchnb's REST API (/batchnb/api/),\n"
    " * from the pydantic models in batchnb/server/models/ (GET /batchnb/api/schema).\n"
    " * Regenerate with `python scripts/gen_wire_types.py`; tests/test_wire_types.py checks it.\n"
    " */"
)


def _strip_titles(node: Any, keep: bool = False) -> Any:
    """A copy of a JSON Schema without ``title`` keywords below the top of each definition."""
    if isinstance(node, list):
        return [_strip_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and not keep and isinstance(value, str):
            continue
        if key in ("properties", "patternProperties", "$defs", "definitions") and isinstance(value, dict):
            # Maps of names to schemas: the names are not keywords; a definition keeps its title.
            out[key] = {name: _strip_titles(sub, keep=key in ("$defs", "definitions")) for name, sub in value.items()}
        else:
            out[key] = _strip_titles(value)
    return out


def wire_schema() -> dict[str, Any]:
    """One schema whose ``$defs`` are the API's models and whose root lists them (so each is emitted)."""
    from batchnb.server.models import api_schema

    defs = api_schema("0")["$defs"]
    for name, definition in defs.items():
        definition.setdefault("title", name)
    return _strip_titles(
        {
            "title": "WireModels",
            "description": "Every wire model of the API by name (an index; the API never sends this object).",
            "type": "object",
            "properties": {name: {"$ref": f"#/$defs/{name}"} for name in sorted(defs)},
            "additionalProperties": False,
            "$defs": defs,
        },
        keep=True,
    )


def generate() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise SystemExit("gen_wire_types: node is not on PATH")
    if not PACKAGE.is_dir():
        raise SystemExit(f"gen_wire_types: {PACKAGE} is missing: run `jlpm install` in {LABEXT}")
    result = subprocess.run(
        [node, str(COMPILER), BANNER],
        input=json.dumps(wire_schema()).encode(),
        capture_output=True,
        cwd=LABEXT,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"gen_wire_types: json-schema-to-typescript failed:\n{result.stderr.decode()}")
    return result.stdout.decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if wire.ts is out of date")
    args = parser.parse_args(argv)
    text = generate()
    current = TARGET.read_text() if TARGET.exists() else ""
    if args.check:
        if current == text:
            return 0
        diff = difflib.unified_diff(
            current.splitlines(True), text.splitlines(True), "wire.ts (committed)", "wire.ts (generated)"
        )
        sys.stdout.writelines(diff)
        print("\nlabextension/src/wire.ts is out of date: run `python scripts/gen_wire_types.py`", file=sys.stderr)
        return 1
    if current != text:
        TARGET.write_text(text)
        print(f"wrote {TARGET.relative_to(ROOT)}")
    else:
        print(f"{TARGET.relative_to(ROOT)} is up to date")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
