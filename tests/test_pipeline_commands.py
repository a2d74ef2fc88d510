"""Values reach a step's program as exactly the text given, whatever quotes surround their
placeholder, and are never run as shell code.

The steps are real ``bash -c`` commands run by a real pipeline runner; the program is a tiny Python
script that writes its ``sys.argv`` as JSON. A marker file that any injected command would create
must never appear.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import job_count, reaping
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchnb import BatchClient
from batchnb.errors import ValidationError
from batchnb.pipelines.command import render_command

ARGV_PY = """
import json, sys
with open(sys.argv[1], "w", encoding="utf-8") as f:
    json.dump(sys.argv[2:], f)
"""


def hostile(mark: Path) -> list[str]:
    """Values that a shell would run, split, glob or unquote if they were spliced into the command."""
    return [
        f"$(touch {mark})",
        f"`touch {mark}`",
        f"; touch {mark}",
        f"&& touch {mark}",
        f"| touch {mark}",
        f"x' ; touch {mark} ; '",
        f'x" ; touch {mark} ; "',
        "it's",
        'say "hi"',
        "'",
        '"',
        "back\\slash\\",
        "two\nlines",
        "*",
        "-n",
        "hello world",
        "",
        "ünïcødé ✓ 日本",
        "$HOME ${HOME} !!",
        " \ttabs  and spaces ",
        "~/x",
        "]] $[[ ${{inputs.v0}}",
    ]


# Each quoting position: the placeholder written in it, and the arguments the program must receive.
POSITIONS: dict[str, tuple[str, Any]] = {
    "unquoted": ("{ref}", lambda v: [v]),
    "double": ('"{ref}"', lambda v: [v]),
    "single": ("'{ref}'", lambda v: [v]),
    "option": ('--x="{ref}"', lambda v: [f"--x={v}"]),
    "group": ("$[[--x '{ref}']]", lambda v: ["--x", v]),
    "ansi_c": ("$'{ref}'", lambda v: [v]),
    "nested": ('"$(printf %s "{ref}")"', lambda v: [v.rstrip("\n")]),  # $(...) drops trailing newlines
}
# Nestings where bash's quoting bends (checked against bash itself, not in a pipeline).
NESTED_POSITIONS: dict[str, tuple[str, Any]] = {
    "param": ("${{BATCHNB_TEST_UNSET:-{ref}}}", lambda v: [v]),
    "param_quoted": ('"${{BATCHNB_TEST_UNSET:-"{ref}"}}"', lambda v: [v]),
    "backticks_quoted": ('"`printf %s "{ref}"`"', lambda v: [v.rstrip("\n")]),
    "backticks_escaped_quotes": ('"`printf %s \\"{ref}\\"`"', lambda v: [v.rstrip("\n")]),
}
# Positions whose shown command Python's shlex reads as bash does (no $'...' or $(...)).
PLAIN_POSITIONS = ("unquoted", "double", "single", "option", "group")


def _code_folder(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "argv.py").write_text(ARGV_PY)
    for name in ("a.txt", "b.txt"):  # what an unquoted * would expand to
        (code / name).write_text(name)
    return code


def test_hostile_values_reach_the_program_unchanged_in_every_quoting_position(
    client: BatchClient, tmp_path: Path
) -> None:
    mark = tmp_path / "pwned"
    values = hostile(mark)
    code = _code_folder(tmp_path)
    ports = {f"v{i}": {"type": "string"} for i in range(len(values))}
    jobs: dict[str, Any] = {}
    for position, (shape, _) in POSITIONS.items():
        args = " ".join(shape.format(ref=f"${{{{inputs.v{i}}}}}") for i in range(len(values)))
        jobs[position] = {
            "component": {
                "code": str(code),
                "command": f"python argv.py ${{{{outputs.o}}}}/argv.json {args}",
                "inputs": ports,
                "outputs": {"o": {"type": "uri_folder"}},
            },
            "inputs": {name: f"${{{{parent.inputs.{name}}}}}" for name in ports},
        }
    # Shell arithmetic evaluates what is put in it: a whole number goes through.
    jobs["arithmetic"] = {
        "component": {
            "code": str(code),
            "command": "python argv.py ${{outputs.o}}/argv.json $(( ${{inputs.n}} * 2 )) "
            '$( (( ${{inputs.n}} > 20 )) && echo big) $([[ "${{inputs.n}}" -lt 30 ]] && echo small)',
            "inputs": {"n": {"type": "integer"}},
            "outputs": {"o": {"type": "uri_folder"}},
        },
        "inputs": {"n": 21},
    }
    spec = {
        "type": "pipeline",
        "inputs": {f"v{i}": {"type": "string", "value": v} for i, v in enumerate(values)},
        "jobs": jobs,
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=180)
    assert job["status"] == "Completed", job["error"]
    assert not mark.exists()

    steps = {c["step"]: c for c in client.jobs.list(parent_job_name=job["name"])}
    for position, (_, expected) in POSITIONS.items():
        received = json.loads((Path(steps[position]["outputs"]["o"]["path"]) / "argv.json").read_text("utf-8"))
        assert received == [a for v in values for a in expected(v)], position
    received = json.loads((Path(steps["arithmetic"]["outputs"]["o"]["path"]) / "argv.json").read_text("utf-8"))
    assert received == ["42", "big", "small"]

    # The command a user sees (job show, the step's log) has the real values, quoted so that
    # pasting it gives the program the same arguments.
    for position in PLAIN_POSITIONS:
        shown = steps[position]["command"]
        out = str(Path(steps[position]["outputs"]["o"]["path"]) / "argv.json")
        expected = POSITIONS[position][1]
        assert shlex.split(shown) == ["python", "argv.py", out, *(a for v in values for a in expected(v))]
    log = Path(steps["double"]["std_log"]).read_text("utf-8")
    assert log.startswith("$ python argv.py ") and shlex.quote(values[0]) in log


def _bash_args(command: str, cwd: Path, env: dict[str, str] | None = None) -> list[str]:
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, timeout=30, check=True
    )
    return result.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]


# Any text a program can receive, with the shell's special pieces (and an injection that would
# create ./pwned) mixed in often.
SHELL_PIECES = ["$(touch pwned)", "`touch pwned`", ";touch pwned", "'", '"', "\\", "$", "`", "*", "\n", " ", "!", "#"]
SHELL_PIECES += ["{", "}", "(", ")", "]]", "$[[", "${{inputs.v}}", "-", "~"]
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
SHELL_TEXT = st.lists(st.one_of(st.sampled_from(SHELL_PIECES), ANY_TEXT), max_size=6).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=SHELL_TEXT)
def test_any_text_is_received_as_given_by_the_command_and_by_its_shown_form(value: str, tmp_path: Path) -> None:
    positions = [*POSITIONS.values(), *NESTED_POSITIONS.values()]
    template = "printf '%s\\0' " + " ".join(shape.format(ref="${{inputs.v}}") for shape, _ in positions)
    command = render_command(template, {"v": {"type": "string", "value": value}}, {}, "step")
    expected = [a for _, shape in positions for a in shape(value)]
    assert _bash_args(command.script, tmp_path, command.env) == expected
    assert _bash_args(command.shown, tmp_path) == expected
    assert not (tmp_path / "pwned").exists()


def _one_step(command: str, inputs: dict[str, Any], ports: dict[str, Any]) -> dict[str, Any]:
    return {"type": "pipeline", "jobs": {"a": {"component": {"command": command, "inputs": ports}, "inputs": inputs}}}


STRING = {"m": {"type": "string"}}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (_one_step('echo "${{inputs.m}}"', {"m": "a\0b"}, STRING), "inputs.m: the value holds a NUL character"),
        *(
            (_one_step(command, {"m": "a[$(touch x)]"}, STRING), "inputs.m: the command puts it where bash evaluates")
            for command in (
                "echo $(( ${{inputs.m}} + 1 ))",
                "(( ${{inputs.m}} > 0 )) && echo big",
                '[[ "${{inputs.m}}" -gt 0 ]] && echo big',
            )
        ),
        (_one_step("echo '${{inputs.m}}", {"m": "x"}, STRING), "the command leaves a ' quote open"),
        (_one_step("echo \\${{inputs.m}}", {"m": "x"}, STRING), "a backslash right before ${{inputs.m}}"),
    ],
)
def test_commands_that_cannot_carry_a_value_safely_are_refused(
    client: BatchClient, spec: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValidationError) as info:
        client.jobs.create_or_update(spec, source="bad.yml")
    assert needle in str(info.value) and "jobs.a" in str(info.value)
    assert job_count(client) == 0


SAY_PIPELINE_YML = """
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: say
inputs:
  msg:
    type: string
jobs:
  say:
    type: command
    inputs:
      msg: ${{{{parent.inputs.msg}}}}
    component:
      code: {code}
      command: python argv.py ${{{{outputs.o}}}}/argv.json --msg="${{{{inputs.msg}}}}"
      inputs:
        msg:
          type: string
      outputs:
        o:
          type: uri_folder
"""


def _say_project(tmp_path: Path) -> Callable[..., Any]:
    """In tmp_path: say.yml and job.yml (its string input msg left to --set); returns ``cli(*args)``,
    batchnb run there on the workspace tmp_path/ws, which checks it succeeded and parses its JSON."""
    (tmp_path / "say.yml").write_text(SAY_PIPELINE_YML.format(code=_code_folder(tmp_path)))
    (tmp_path / "job.yml").write_text("type: pipeline\ncomponent: say.yml\ninputs:\n  msg:\n    type: string\n")
    env = {**os.environ, "BATCHNB_WORKSPACE": str(tmp_path / "ws")}

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "batchnb", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return cli


def _say_from_the_command_line(cli: Callable[..., Any], value: str) -> dict[str, Any]:
    """Runs job.yml with ``--set inputs.msg=value``; its one step, which received exactly ``value``."""
    with reaping():
        created = cli("job", "create", "-f", "job.yml", "--set", f"inputs.msg={value}")
        job = cli("job", "wait", "-n", created["name"])
    assert job["status"] == "Completed", job["error"]
    (step,) = cli("job", "list", "--parent-job-name", created["name"])
    assert json.loads((Path(step["outputs"]["o"]["path"]) / "argv.json").read_text("utf-8")) == [f"--msg={value}"]
    return step


def test_a_hostile_value_from_the_command_line(tmp_path: Path) -> None:
    mark = tmp_path / "pwned"
    cli = _say_project(tmp_path)
    (tmp_path / "deployment.yml").write_text("name: blue\nendpoint_name: says\ntype: pipeline\ncomponent: say.yml\n")
    value = f'$(touch {mark}); it\'s "two words" *'
    (tmp_path / "inputs.yml").write_text(json.dumps({"inputs": {"msg": {"type": "string", "default": value}}}))
    step = _say_from_the_command_line(cli, value)
    # job show and the step's log show the value as it was given, quoted for a shell.
    assert shlex.split(cli("job", "show", "-n", step["name"])["command"])[3] == f"--msg={value}"
    logged = Path(step["std_log"]).read_text("utf-8").splitlines()[0]
    assert logged.startswith("$ ") and shlex.split(logged[2:])[3] == f"--msg={value}"

    # A pipeline deployment's dry run shows the same command, and runs nothing.
    cli("batch-endpoint", "create", "-n", "says")
    cli("batch-deployment", "create", "-f", "deployment.yml", "--set-default")
    plan = cli("batch-endpoint", "invoke", "-n", "says", "-f", "inputs.yml", "--dry-run")
    assert shlex.split(plan["steps"][0]["command"])[3] == f"--msg={value}"
    assert not mark.exists()


@pytest.mark.parametrize("value", ["no", "on"])
def test_a_yes_no_word_from_the_command_line_reaches_a_string_input_as_that_word(value: str, tmp_path: Path) -> None:
    # YAML 1.1 reads yes/no/on/off as booleans: the step received "False" or "True".
    _say_from_the_command_line(_say_project(tmp_path), value)
