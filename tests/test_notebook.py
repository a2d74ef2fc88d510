"""The notebook front end: %batch / %%batch driven through a real IPython shell, the live progress
widget following a real job, and the static renderings."""

from __future__ import annotations

import datetime
import re
import textwrap
import time
from html import unescape
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from batchnb import BatchClient

SCRIPT = """
import os, time
def init():
    pass
def run(mini_batch):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    return [os.path.basename(f) for f in mini_batch]
"""


@pytest.fixture
def shell(client: BatchClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> InteractiveShell:
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "batchnb")
    yield ip
    ip.run_line_magic("unload_ext", "batchnb")
    InteractiveShell.clear_instance()


def test_load_ext_registers_line_and_cell_magics(shell: InteractiveShell) -> None:
    magics = shell.magics_manager.magics
    assert "batch" in magics["line"]
    assert "batch" in magics["cell"]


def test_line_magic_speaks_the_cli_and_returns_objects(shell: InteractiveShell, model_dir: Path) -> None:
    shell.user_ns["model_path"] = str(model_dir)
    model = shell.run_line_magic("batch", "model create -n tiny --path {model_path}")
    assert model["name"] == "tiny" and model["version"] == "1"
    assert Path(model["path"], "weights.json").is_file()
    endpoint = shell.run_line_magic("batch", "batch-endpoint create -n ep-nb")
    assert endpoint.name == "ep-nb"
    listed = shell.run_line_magic("batch", "endpoint list")
    assert [e["name"] for e in listed] == ["ep-nb"]
    assert shell.run_line_magic("batch", "endpoint show -n ep-nb --query name") == "ep-nb"


def test_a_mistake_is_one_usage_error_line(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match=r"^batch endpoint nope does not exist in this workspace$"):
        shell.run_line_magic("batch", "batch-endpoint show -n nope")
    with pytest.raises(UsageError, match="required: --name/-n"):
        shell.run_line_magic("batch", "batch-endpoint show")
    with pytest.raises(UsageError, match="give a command"):
        shell.run_line_magic("batch", "")


def test_cell_is_the_scoring_script_then_yaml_inputs_invoke(
    shell: InteractiveShell, client: BatchClient, model_dir: Path, csv_inputs, tmp_path: Path
) -> None:
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    dep = shell.run_cell_magic(
        "batch",
        "deploy ep-nb/blue --model azureml:tiny@latest --mini-batch-size 2 --max-concurrency 2 --env SLEEP=0",
        SCRIPT,
    )
    assert dep["is_default"] is True
    assert dep["settings"]["mini_batch_size"] == 2
    assert dep["settings"]["environment_variables"] == {"SLEEP": "0"}
    assert Path(dep["resolved"]["code_dir"], "score.py").read_text() == SCRIPT

    csv_inputs(5, name="nbdata")  # relative to the notebook's folder (tmp_path, the cwd)
    inputs = textwrap.dedent("""
        inputs:
          heart_data:
            type: uri_folder
            path: nbdata
    """)
    job = shell.run_cell_magic("batch", "batch-endpoint invoke -n ep-nb", inputs)
    assert job["status"] in ("Queued", "Preparing", "Running")
    job.wait(timeout=120)
    assert job.status == "Completed", job.error
    out = Path(job.outputs["score"]["path"]) / "predictions.csv"
    assert out.read_text().splitlines() == [f"f{i:03d}.csv" for i in range(5)]
    assert not list(tmp_path.glob(".batchnb-cell-*"))  # the cell's YAML file is cleaned up


def test_workspace_check_and_backup_and_a_failed_dry_run_return_records(
    shell: InteractiveShell, client: BatchClient, deploy, csv_inputs, tmp_path: Path
) -> None:
    deploy("def init():\n    raise RuntimeError('no model')\n\ndef run(mb):\n    return mb\n", set_default=True)
    shell.user_ns["data"] = str(csv_inputs(2))
    dry = shell.run_line_magic("batch", "batch-endpoint invoke -n ep-test --input {data} --dry-run")
    assert (dry["status"], dry["stage"]) == ("failed", "init") and "RuntimeError: no model" in dry["error"]
    assert shell.run_line_magic("batch", "workspace check --query healthy") is True
    shell.user_ns["backup"] = str(tmp_path / "nb-backup.db")
    made = shell.run_line_magic("batch", "workspace backup --file {backup}")
    assert made["backup"] == str(tmp_path / "nb-backup.db") and Path(made["backup"]).is_file()


def test_cell_yaml_creates_an_endpoint(shell: InteractiveShell) -> None:
    endpoint = shell.run_cell_magic("batch", "batch-endpoint create", "name: from-cell\ndescription: made in a cell\n")
    assert endpoint["description"] == "made in a cell"
    with pytest.raises(UsageError, match="the cell is the --file"):
        shell.run_cell_magic("batch", "batch-endpoint create -f x.yml", "name: x\n")


def test_a_cell_of_expanding_aliases_or_a_bad_query_is_one_line_and_creates_nothing(
    shell: InteractiveShell, client: BatchClient
) -> None:
    laughs = ["name: lol", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    with pytest.raises(UsageError, match=r"line \d+, column \d+: invalid YAML: with its aliases expanded"):
        shell.run_cell_magic("batch", "batch-endpoint create", "\n".join(laughs))
    with pytest.raises(UsageError, match="--query 'ep-cell'"):
        shell.run_cell_magic("batch", "batch-endpoint create --query ep-cell", "name: ep-cell\n")
    assert client.batch_endpoints.list() == []


def test_deploy_cell_with_a_syntax_error_is_one_line(
    shell: InteractiveShell, client: BatchClient, model_dir: Path
) -> None:
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    with pytest.raises(UsageError, match="syntax error at line 3"):
        shell.run_cell_magic("batch", "deploy ep-nb/blue --model tiny", "def init():\n    pass\ndef run(:\n")
    with pytest.raises(UsageError, match="expected ENDPOINT/DEPLOYMENT"):
        shell.run_cell_magic("batch", "deploy justone --model tiny", SCRIPT)


def test_a_refused_deploy_cell_leaves_no_endpoint_and_keeps_an_existing_one(
    shell: InteractiveShell, client: BatchClient, model_dir: Path
) -> None:
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    refused = [
        ("deploy ep-new/blue --model tiny", "def init():\n    pass\ndef run(:\n", "syntax error at line 3"),
        ("deploy ep-new/blue --model nosuchmodel", SCRIPT, "nosuchmodel"),
        ("deploy ep-new/blue --model tiny --max-concurrency 0", SCRIPT, "max_concurrency_per_instance"),
    ]
    for line, cell, message in refused:
        with pytest.raises(UsageError, match=message):
            shell.run_cell_magic("batch", line, cell)
        assert shell.run_line_magic("batch", "batch-endpoint list") == []
    assert not (client.workspace.root / "notebook-code" / "ep-new").exists()

    shell.run_cell_magic("batch", "deploy ep-old/blue --model tiny", SCRIPT)
    for line, cell, message in refused:
        with pytest.raises(UsageError, match=message):
            shell.run_cell_magic("batch", line.replace("ep-new", "ep-old"), cell)
    endpoint = shell.run_line_magic("batch", "batch-endpoint show -n ep-old")
    assert endpoint["deployments"] == ["blue"] and endpoint["defaults"]["deployment_name"] == "blue"
    deployment = shell.run_line_magic("batch", "batch-deployment show -e ep-old -n blue")
    assert deployment["revision"] == 1
    assert Path(deployment["resolved"]["code_source"], "score.py").read_text() == SCRIPT


def test_progress_widget_follows_a_running_job_and_ends_with_the_summary(
    client: BatchClient, deploy, csv_inputs
) -> None:
    from batchnb.widgets import JobProgress

    # Three rounds of two 1 s mini-batches: several of the widget's polls (every 0.5 s) fall inside
    # the run even on a loaded machine (with 0.4 s a CI run saw only two values before the end).
    deploy(SCRIPT, mini_batch_size=1, max_concurrency_per_instance=2, environment_variables={"SLEEP": "1"})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6)))
    view = JobProgress(job)
    ended: list[dict] = []
    seen_values: set[int] = set()
    thread = view.follow(on_end=ended.append)
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline:
        seen_values.add(view.bar.value)
        time.sleep(0.05)
    assert ended and ended[0]["status"] == "Completed"
    assert view.bar.max == 6 and view.bar.value == 6
    assert view.bar.bar_style == "success"
    assert len(seen_values) >= 3  # it moved while the job ran, not only at the end
    assert "6/6 mini-batches" in view.counters.value
    assert "Completed" in view.header.value
    assert view.cancel_button.disabled
    # Every view of the widget (one re-attached after a page reload too) turns into the summary card.
    view.become_summary(ended[0])
    card = view.widget.children[-1].value
    assert f"data-job='{job['name']}'" in card.replace('"', "'") and "Completed" in card
    assert view.bar not in view.widget.children


def test_cancel_button_cancels_the_job(client: BatchClient, deploy, csv_inputs) -> None:
    from batchnb.widgets import JobProgress

    deploy(SCRIPT, mini_batch_size=1, environment_variables={"SLEEP": "1"})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(20)))
    view = JobProgress(job)
    view.cancel_button.click()
    assert client.jobs.wait(job["name"], timeout=60)["status"] == "Canceled"


def test_finished_job_renders_as_html_with_a_chart_and_as_text(client: BatchClient, deploy, csv_inputs) -> None:
    deploy(SCRIPT, mini_batch_size=1)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(4))).wait(timeout=120)
    html = job._repr_html_()
    assert 'data-status="Completed"' in html
    assert "<svg" in html and "rows/s" in html
    # The chart has axes with units: time since start along the bottom, ticks in seconds.
    assert "time since start" in html and "mini-batches done" in html and re.search(r">\d+\.\d s</text>", html)
    assert "4 done, 0 failed" in html
    # A fast run() still shows its time (in ms), not "0.0 s".
    worker = re.search(r'data-row="worker-time"><th>Worker time</th><td>([^<]*)</td>', html).group(1)
    assert re.fullmatch(r"(<1 ms|\d+ ms|\d+\.\d s) in run\(\), summed over the workers", worker), worker
    assert not worker.startswith("0.0 s")
    text = repr(job)
    assert text.startswith(f"Job {job['name']}: Completed")
    assert "4 succeeded, 0 failed" in text
    points = job.timeline()
    assert points[0] == (0.0, 0, 0) and points[-1][1:] == (4, 4)


# --- forms and the job table ---------------------------------------------------------------------


def test_model_form_registers_and_shows_mistakes_inline(client: BatchClient, model_dir: Path) -> None:
    from batchnb.widgets import ModelForm

    form = ModelForm(client)
    form.name.value, form.path.value = "form-model", str(model_dir / "missing")
    form.submit.click()
    assert "does not exist" in form.message.value and "batchnb-form-error" in form.message.value
    assert client.models.list() == []
    form.path.value = str(model_dir)
    form.submit.click()
    assert "registered form-model version 1" in form.message.value
    assert client.models.get("form-model")["version"] == "1"


def test_deployment_form_prefills_azures_defaults_and_validates_as_you_type(
    client: BatchClient, model_dir: Path, tmp_path: Path
) -> None:
    from batchnb.widgets import DeploymentForm, EndpointForm

    endpoint_form = EndpointForm(client)
    endpoint_form.name.value = "x"
    endpoint_form.submit.click()
    assert "invalid endpoint name 'x'" in unescape(endpoint_form.message.value)
    endpoint_form.name.value = "ep-form"
    endpoint_form.submit.click()
    assert "created ep-form" in endpoint_form.message.value
    client.models.create_or_update({"name": "tiny", "path": str(model_dir)})
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SCRIPT)

    form = DeploymentForm(client)
    defaults = (
        form.mini_batch_size.value,
        form.max_concurrency.value,
        form.instance_count.value,
        form.error_threshold.value,
        form.max_retries.value,
        form.timeout.value,
        form.output_action.value,
        form.output_file_name.value,
        form.logging_level.value,
    )
    assert defaults == (10, 1, 1, -1, 3, 30, "append_row", "predictions.csv", "info")
    assert form.endpoint.options == ("ep-form",) and form.model.options == ("tiny:1",)
    form.name.value = "blue"
    form.code.value = str(code)
    form.mini_batch_size.value = 0  # inline validation names the field at once
    assert "settings.mini_batch_size" in form.message.value
    form.mini_batch_size.value = 5
    assert form.message.value == ""
    form.submit.click()
    assert "created deployment blue of ep-form (default)" in form.message.value
    assert client.batch_deployments.get("blue", "ep-form")["settings"]["mini_batch_size"] == 5


def test_job_table_lists_jobs_and_follows_them_to_the_end(client: BatchClient, deploy, csv_inputs) -> None:
    from batchnb.widgets import JobTable

    deploy(SCRIPT, mini_batch_size=1, environment_variables={"SLEEP": "0.3"})
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(4)))
    table = JobTable(client, poll=0.2)
    assert job["name"] in table.table.value
    client.jobs.wait(job["name"], timeout=120)
    deadline = time.monotonic() + 10
    while ">Completed<" not in table.table.value and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ">Completed<" in table.table.value and "<td>4/4 mini-batches</td>" in table.table.value


def test_entities_render_as_html(client: BatchClient) -> None:
    endpoint = client.batch_endpoints.create_or_update({"name": "ep-html", "description": "<b>bold</b>"})
    html = endpoint._repr_html_()
    assert "BatchEndpoint ep-html" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html  # escaped, never injected
    # Times read as local times, not epoch seconds.
    local = datetime.datetime.fromtimestamp(endpoint["created_at"]).strftime("%Y-%m-%d %H:%M")
    assert f"<th>created_at</th><td>{local}</td>" in html
    assert str(endpoint["created_at"]) not in html
