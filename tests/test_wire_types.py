"""labextension/src/wire.ts (the sidebar's TypeScript types) is generated from the REST API's pydantic
models by scripts/gen_wire_types.py; this test regenerates it and fails on any difference."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_wire_types.py"
COMPILER = ROOT / "labextension" / "node_modules" / "json-schema-to-typescript"


def _load_script():
    spec = importlib.util.spec_from_file_location("gen_wire_types", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _need_compiler() -> None:
    """json-schema-to-typescript comes with `jlpm install` in labextension/ (pip install -e . runs it)."""
    missing = None
    if shutil.which("node") is None and shutil.which("nodejs") is None:
        missing = "node is not installed"
    elif not COMPILER.is_dir():
        missing = f"{COMPILER.relative_to(ROOT)} is missing (jlpm install in labextension/)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"cannot check wire.ts: {missing}")
        pytest.skip(missing)


def test_wire_ts_matches_the_server_models() -> None:
    _need_compiler()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, (
        "labextension/src/wire.ts differs from what batchnb/server/models/ generates; "
        "run `python scripts/gen_wire_types.py` and commit the result\n" + result.stdout[-6000:] + result.stderr
    )


def test_wire_schema_names_every_model_once_and_drops_property_titles() -> None:
    gen = _load_script()
    schema = gen.wire_schema()
    defs = schema["$defs"]
    assert {"Job", "JobList", "BatchEndpoint", "EndpointList", "InvokeRequest", "EndpointPatch", "JobLogs"} <= set(defs)
    assert set(schema["properties"]) == set(defs)
    job = defs["Job"]
    assert job["title"] == "Job"
    assert "title" not in job["properties"]["status"]
    assert job["properties"]["status"]["enum"][0] == "Queued"


def test_strip_titles_keeps_a_property_named_title() -> None:
    gen = _load_script()
    schema = {
        "title": "Top",
        "properties": {"title": {"type": "string", "title": "Title"}, "x": {"anyOf": [{"title": "X"}]}},
        "$defs": {"A": {"title": "A", "properties": {"b": {"title": "B"}}}},
    }
    out = gen._strip_titles(schema, keep=True)
    assert out == {
        "title": "Top",
        "properties": {"title": {"type": "string"}, "x": {"anyOf": [{}]}},
        "$defs": {"A": {"title": "A", "properties": {"b": {}}}},
    }
