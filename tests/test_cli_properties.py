"""Property: whatever a user types, ``batchnb`` either works, or prints exactly one ``ERROR:`` line
(no traceback, no "internal error") and exits with a documented code, leaving the workspace's store
rows and files as they were.

Hypothesis drives two kinds of input against one real workspace, through the CLI in this process:
mutated deployment YAML files (keys dropped, wrong types, huge and negative numbers, odd strings,
unknown keys, deep nesting, bytes spliced into the text), and argument lists drawn from the real
flags of the commands that create things or start jobs. ``invoke`` always gets ``--dry-run``, so
an invocation that is accepted scores in this process instead of starting a job's processes; it
plans the job exactly as a real invocation does.
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import error_line, make_project, run_cli, snapshot
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from batchnb.cli import build_parser

EP, DEP = "prop-ep", "prop-dep"
NEST = "nested-value-placeholder"
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

VALID_DEPLOYMENT: dict[str, Any] = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json",
    "name": DEP,
    "endpoint_name": EP,
    "type": "model",
    "model": {"name": "prop-model", "path": "model"},
    "code_configuration": {"code": "code", "scoring_script": "score.py"},
    "environment": {"name": "env", "image": "mcr.microsoft.com/azureml/minimal:latest"},
    "compute": "azureml:local",
    "resources": {"instance_count": 1},
    "settings": {
        "max_concurrency_per_instance": 1,
        "mini_batch_size": 2,
        "output_action": "append_row",
        "output_file_name": "predictions.csv",
        "retry_settings": {"max_retries": 3, "timeout": 30},
        "error_threshold": -1,
        "logging_level": "info",
        "environment_variables": {"A": "1"},
    },
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model, a scoring script, inputs, odd files (a FIFO, a symlink loop) and a workspace with
    endpoint prop-ep and its deployment prop-dep: shared by every example, which must leave it whole."""
    root = tmp_path_factory.mktemp("props")
    os.mkfifo(root / "fifo")
    (root / "loop").symlink_to("loop")
    return make_project(root, EP, VALID_DEPLOYMENT)


def check(project: Path, *args: str) -> None:
    """Run the command; if it is refused, it is refused cleanly and changed nothing."""
    ws = project / "ws"
    before = snapshot(ws)
    result = run_cli(*args, ws=ws)
    event(f"exit code {result[0]}")  # shown by --hypothesis-show-statistics: both outcomes are reached
    if result[0] != 0:
        error_line(result)
        assert snapshot(ws) == before, f"batchnb {' '.join(args)} was refused but changed the workspace"


# --- mutated deployment YAML ----------------------------------------------------------------------

_PATHS = [
    ("name",), ("endpoint_name",), ("type",), ("model",), ("model", "path"), ("model", "name"), ("model", "type"),
    ("code_configuration",), ("code_configuration", "code"), ("code_configuration", "scoring_script"),
    ("environment",), ("compute",), ("resources",), ("resources", "instance_count"), ("settings",),
    *(("settings", key) for key in VALID_DEPLOYMENT["settings"]), ("settings", "retry_settings", "max_retries"),
    ("settings", "retry_settings", "timeout"), ("settings", "mini_batch_mode"), ("settings", "recursive"),
    ("settings", "instance_count"), ("tags",), ("properties",), ("description",), ("max_concurrency_per_instance",),
]  # fmt: skip

_ODD_STRINGS = st.sampled_from(
    ["", " ", "../../../etc/passwd", "/dev/zero", "azureml:nope@latest", "azureml:prop-model:99", "s3://b/x",
     "nope://x", "PT99999H", "64MB", "1e400", "-1", "0", "x" * 300, "fifo", "loop", "a\x00b", "ça", "💥", "true"]
)  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, -2, 1024, 1025, 2**31, 10**10, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    _ODD_STRINGS,
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8) | _ODD_STRINGS, inner, max_size=3)
    ),
    max_leaves=8,
)


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = data
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


@st.composite
def mutated_deployment(draw: st.DrawFn) -> bytes:
    """A deployment YAML file's bytes: the valid one, changed a few ways."""
    data = copy.deepcopy(VALID_DEPLOYMENT)
    nest = ""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_PATHS))
        how = draw(st.sampled_from(["drop", "set", "unknown", "nest"]))
        if how == "drop":
            _drop(data, path)
        elif how == "set":
            _set(data, path, draw(_VALUES))
        elif how == "unknown":
            _set(data, (*path[:-1], draw(st.sampled_from(["mini_batch_sise", "extra", "$ref", "<<"]))), 1)
        else:  # nested lists or mappings, spliced in as text (dumping them would exhaust the stack)
            depth = draw(st.sampled_from([2, 50, 98, 150, 10_000]))
            nest = ("[" * depth + "1" + "]" * depth) if draw(st.booleans()) else ("{k: " * depth + "1" + "}" * depth)
            _set(data, path, NEST)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).replace(NEST, nest).encode()
    if draw(st.integers(0, 9)) == 0:  # one file in ten: bytes spliced into the text
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=16)) + text[at:]
    return text


@EXAMPLES
@given(content=mutated_deployment())
def test_any_deployment_yaml_works_or_is_refused_cleanly(project: Path, content: bytes) -> None:
    spec = project / "mutated.yml"
    spec.write_bytes(content)
    check(project, "batch-deployment", "create", "-f", str(spec), "-e", EP, "-o", "none")


# --- argument lists from the real flags -----------------------------------------------------------

COMMANDS = [
    ("batch-endpoint", "invoke"),
    ("batch-endpoint", "create"),
    ("batch-endpoint", "update"),
    ("batch-deployment", "create"),
    ("batch-deployment", "update"),
    ("model", "create"),
    ("data", "create"),
    ("environment", "create"),
    ("datastore", "create"),
    ("compute", "create"),
    ("component", "create"),
    ("job", "list"),
    ("job", "show"),
]


def _flags(group: str, command: str) -> list[argparse.Action]:
    """The command's own flags, as the real parser defines them (no -h, no --debug)."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[group]
    cmd = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return [
        a
        for a in cmd._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction) and "--debug" not in a.option_strings
    ]


def _argument_values(project: Path) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            EP, DEP, "prop-model", "local", "nope", "x", "", "0", "-1", "1", "3", "1025", "1000000000", "abc",
            "1e400", str(project / "data"), str(project / "data" / "f0.csv"), str(project / "model"),
            str(project / "fifo"), str(project / "loop"), str(project / "deployment.yml"), str(project / "nothing"),
            "/dev/zero", "s3://bucket/x", "gs://bucket/x", "nope://x", "azureml:nope@latest", "azureml:prop-model:1",
            "instance_count=0", "instance_count=abc", "mini_batch_size=0", "retry_settings.timeout=10000000000",
            "max_concurrency_per_instance=1000000000", "error_threshold=-7", "output_file_name=../x",
            "defaults.deployment_name=nope", "a.b=c", "=", "key=[[[[", "x=&a [*a]", "uri_file", "uri_folder",
            "json", "yaml", "table", "--", "-n",
        ]
    )  # fmt: skip


def _baseline(project: Path, group: str, command: str) -> list[str]:
    """Arguments with which the command works; the drawn flags come after them, and win (argparse's
    last value), so that most examples reach the checks behind the parser."""
    return {
        "invoke": ["-n", EP, "--input", str(project / "data")],
        "create": {
            "batch-endpoint": ["-n", "prop-ep-two"],
            "batch-deployment": ["-f", str(project / "deployment.yml"), "-e", EP],
            "model": ["-n", "prop-model", "--path", str(project / "model")],
            "data": ["-n", "prop-data", "--path", str(project / "data")],
            "environment": ["-n", "prop-env", "--image", "python:3.11"],
            "datastore": ["-n", "prop_store", "--path", str(project / "data")],
            "compute": ["-n", "prop-compute"],
            "component": [],
        }.get(group, []),
        "update": ["-n", EP] if group == "batch-endpoint" else ["-n", DEP, "-e", EP],
        "show": ["-n", "nope"],
    }.get(command, [])


@st.composite
def command_line(draw: st.DrawFn, project: Path) -> list[str]:
    group, command = draw(st.sampled_from(COMMANDS))
    args = [group, command, *(_baseline(project, group, command) if draw(st.integers(0, 3)) else [])]
    for action in draw(st.lists(st.sampled_from(_flags(group, command)), max_size=6)):
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            args.append(flag)
        elif action.choices and draw(st.booleans()):
            args += [flag, draw(st.sampled_from(list(action.choices)))]
        else:
            count = draw(st.integers(1, 3)) if action.nargs == "+" else 1
            args += [flag, *(draw(_argument_values(project)) for _ in range(count))]
    if command == "invoke":
        args.append("--dry-run")
    return args


@EXAMPLES
@given(data=st.data())
def test_any_command_line_works_or_is_refused_cleanly(project: Path, data: st.DataObject) -> None:
    args = data.draw(command_line(project))
    check(project, *args, "-o", "none")
