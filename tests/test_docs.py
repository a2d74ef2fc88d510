"""The documentation stays true: the CLI reference is what the CLI generates, README's commands and
tour run, every local link resolves, and the facts the docs state (defaults, environment variables,
log files) are the code's."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from batchnb.cli import build_parser
from batchnb.schemas import ModelDeploymentSettings, RetrySettings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_reference", ROOT / "scripts" / "gen_cli_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _section(text: str, heading: str) -> str:
    """The text under a markdown heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n") + len(heading) + 1
    ends = [m.start() for m in re.finditer(rf"^#{{1,{len(level)}}} ", text[start:], re.M)]
    return text[start : start + ends[0]] if ends else text[start:]


def test_cli_reference_is_current() -> None:
    generated = _generator().generate()
    committed = (DOCS / "cli-reference.md").read_text()
    assert committed == generated, (
        "docs/cli-reference.md is out of date with the CLI: run `python scripts/gen_cli_reference.py` "
        "and commit docs/cli-reference.md"
    )


def test_cli_reference_covers_every_group_command_and_flag() -> None:
    gen = _generator()
    page = gen.generate()
    assert page == gen.generate(), "the reference must be deterministic"
    for group, aliases, _, group_parser in gen._subcommands(build_parser()):
        assert f"\n## batchnb {group}\n" in page
        for alias in aliases:
            assert f"`batchnb {alias}`" in page
        for command, _, _, parser in gen._subcommands(group_parser):
            section = _section(page, f"### batchnb {group} {command}")
            for action in parser._actions:
                for flag in action.option_strings:
                    if flag not in ("-h", "--help", "--workspace", "-w", "--query", "--output", "-o", "--debug"):
                        assert f"`{flag}`" in section, f"{flag} of `batchnb {group} {command}` is missing"
    download = _section(page, "### batchnb job download")
    assert "| `--output-name` | `OUTPUT_NAME` | `score` |" in download  # defaults are shown
    assert "`--name`, `-n` | `NAME` |  | **required**" in download


def test_readme_keeps_its_two_commands_at_the_top() -> None:
    top = README.read_text().split("\n---\n", 1)[0]
    assert "```bash\npython3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/batchnb demo\n```" in top
    assert "```bash\nbash scripts/test\n```" in top


def test_readme_binder_badge_opens_the_quickstart_notebook() -> None:
    links = re.findall(
        r"\(https://mybinder\.org/v2/gh/([^/]+)/([^/]+)/HEAD\?urlpath=lab/tree/([^)\s]+)\)", README.read_text()
    )
    assert links, "README has no mybinder.org launch link"
    for owner, _, path in links:
        assert owner == "OWNER", "the owner is a placeholder that README explains"
        assert (ROOT / path).is_file(), f"the Binder link opens {path}, which does not exist"
    assert (ROOT / "binder" / "environment.yml").is_file()
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)


def _anchors(text: str) -> set[str]:
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        plain = re.sub(r"[`*]", "", heading).strip().lower()
        anchors.add("".join(c for c in plain.replace(" ", "-") if c.isalnum() or c in "-_"))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_local_links_resolve(page: Path) -> None:
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file.read_text()), f"{page.name} links to #{anchor}, not a heading of {file.name}"


def test_scoring_script_page_states_the_schema_defaults() -> None:
    page = (DOCS / "scoring-script.md").read_text()
    retry, settings = RetrySettings(), ModelDeploymentSettings()
    for name, value in (
        ("retry_settings.max_retries", retry.max_retries),
        ("retry_settings.timeout", retry.timeout),
        ("error_threshold", settings.error_threshold),
    ):
        assert f"| `{name}` | `{value}` |" in page, f"scoring-script.md gives another default for {name}"
    assert f"default `{settings.mini_batch_size}`" in page
    assert f"default `{settings.output_file_name}`" in page


def test_migration_guide_states_the_schema_defaults() -> None:
    page = (DOCS / "migrating-from-azure.md").read_text()
    s = ModelDeploymentSettings()
    for name, value in (
        ("mini_batch_size", s.mini_batch_size),
        ("max_concurrency_per_instance", s.max_concurrency_per_instance),
        ("error_threshold", s.error_threshold),
        ("max_retries", s.retry_settings.max_retries),
        ("timeout", f"{s.retry_settings.timeout} s"),
        ("logging_level", s.logging_level),
    ):
        assert f"`{name}` {value}" in page, f"migrating-from-azure.md gives another default for {name}"
    assert f"`{s.output_action}`, `{s.output_file_name}`" in page


def test_environment_variables_and_log_files_in_the_docs_are_the_engines() -> None:
    # The engine sets the script's environment; the compute targets its thread settings.
    sources = [*(ROOT / "batchnb" / "engine").rglob("*.py"), *(ROOT / "batchnb" / "compute").rglob("*.py")]
    engine = "\n".join(p.read_text() for p in sources)
    table = _section((DOCS / "scoring-script.md").read_text(), "## What the script sees")
    names = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})`", table))
    assert {"AZUREML_MODEL_DIR", "AZUREML_BI_OUTPUT_PATH", "OMP_NUM_THREADS"} <= names
    for name in names - {"CUDA_VISIBLE_DEVICES"}:  # named as what batchnb does not set
        assert f'"{name}"' in engine, f"scoring-script.md names {name}, which the engine does not set"
    assert '"CUDA_VISIBLE_DEVICES"' not in engine, "scoring-script.md says CUDA_VISIBLE_DEVICES is not set"

    layout = (ROOT / "batchnb" / "engine" / "logs.py").read_text()
    guide = (DOCS / "migrating-from-azure.md").read_text()
    for log in re.findall(r"`((?:sys|user)/[^`]+|job_\w+\.txt|readme\.txt)`", guide):
        assert f"logs/{log}" in layout, f"migrating-from-azure.md lists logs/{log}, not in engine/logs.py's layout"


def test_the_five_minute_tour_runs(tmp_path: Path) -> None:
    """Run README's tour block as it is, in an empty folder, with this venv's batchnb on PATH."""
    tour = _section(README.read_text(), "## A five-minute tour")
    block = re.search(r"```bash\n(.*?)```", tour, re.S)
    assert block
    env = {k: v for k, v in os.environ.items() if k != "BATCHNB_WORKSPACE"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.group(1)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    last = proc.stdout.strip().splitlines()[-3:]
    assert [line.split()[:2] for line in last] == [["heart-unlabeled-0.csv", str(i)] for i in range(3)], proc.stdout
    assert (tmp_path / ".batchnb" / "batchnb.db").is_file()
