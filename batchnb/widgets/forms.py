"""Forms to register a model and to create an endpoint or a deployment, and a table of jobs.

Each form only collects values and calls the same API as the CLI; defaults come from the pydantic
models in :mod:`batchnb.schemas` (Azure's), so the form can never drift from the YAML. A mistake
is shown inline, in the form, with the field named; nothing is written.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as w

from .. import display as static
from ..engine.state import ENDED
from ..errors import BatchnbError
from ..schemas import ModelDeploymentSettings, RetrySettings, parse_deployment

_LABEL = {"style": {"description_width": "170px"}, "layout": w.Layout(width="460px")}


def _message(kind: str, text: str) -> str:
    # The text keeps the theme's font colour (readable in light and dark); the hue is in the border.
    var, fallback = static.TONES["success" if kind == "ok" else "error"]
    return (
        f"<div class='batchnb-form-{kind}' style='border-left:3px solid var({var},{fallback});padding:0 6px'>"
        f"{html.escape(text)}</div>"
    )


_TABLE_STYLE = "<style>" + static.status_css(".batchnb-job-table .batchnb-job-table-status") + "</style>"


class _Form:
    """A column of fields, a submit button, and a message line."""

    title = ""
    submit_label = "Create"

    def __init__(self, client: Any) -> None:
        self.client = client
        self.message = w.HTML()
        self.submit = w.Button(description=self.submit_label, button_style="primary")
        self.submit.on_click(lambda _b: self._submit())
        self.result: Any = None
        self.widget = w.VBox([w.HTML(f"<b>{self.title}</b>"), *self.fields(), self.submit, self.message])
        self.widget.add_class("batchnb-form")

    def fields(self) -> list[w.Widget]:
        raise NotImplementedError

    def create(self) -> Any:
        raise NotImplementedError

    def _submit(self) -> None:
        try:
            self.result = self.create()
        except BatchnbError as exc:
            self.message.value = _message("error", exc.message)
            return
        self.message.value = _message("ok", self.done_text(self.result))

    def done_text(self, result: Any) -> str:
        return f"created {result.get('name')}"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class ModelForm(_Form):
    """Register a model version from a local file or folder (or an MLflow URI)."""

    title = "Register a model"
    submit_label = "Register"

    def fields(self) -> list[w.Widget]:
        self.name = w.Text(description="name", **_LABEL)
        self.path = w.Text(description="path", placeholder="a file, a folder, runs:/… or models:/…", **_LABEL)
        self.type = w.Dropdown(description="type", options=["custom_model", "mlflow_model"], **_LABEL)
        self.version = w.Text(description="version (optional)", **_LABEL)
        self.description = w.Text(description="description", **_LABEL)
        return [self.name, self.path, self.type, self.version, self.description]

    def create(self) -> Any:
        spec = {"name": self.name.value.strip(), "path": self.path.value.strip(), "type": self.type.value}
        if self.version.value.strip():
            spec["version"] = self.version.value.strip()
        if self.description.value.strip():
            spec["description"] = self.description.value.strip()
        return self.client.models.create_or_update(spec)

    def done_text(self, result: Any) -> str:
        return f"registered {result['name']} version {result['version']}"


class EndpointForm(_Form):
    """Create a batch endpoint."""

    title = "Create a batch endpoint"

    def fields(self) -> list[w.Widget]:
        self.name = w.Text(description="name", placeholder="3-32 letters, digits, hyphens", **_LABEL)
        self.description = w.Text(description="description", **_LABEL)
        return [self.name, self.description]

    def create(self) -> Any:
        spec = {"name": self.name.value.strip()}
        if self.description.value.strip():
            spec["description"] = self.description.value.strip()
        return self.client.batch_endpoints.create_or_update(spec)


class DeploymentForm(_Form):
    """Create a model deployment. Settings are pre-filled with Azure's defaults and checked as you type."""

    title = "Create a deployment"

    def fields(self) -> list[w.Widget]:
        d = ModelDeploymentSettings()
        r = RetrySettings()
        endpoints = [e["name"] for e in self.client.batch_endpoints.list()]
        models = [f"{m['name']}:{m['version']}" for m in self.client.models.list()]
        self.endpoint = w.Dropdown(description="endpoint", options=endpoints, **_LABEL)
        self.name = w.Text(description="name", **_LABEL)
        self.model = w.Dropdown(description="model", options=models, **_LABEL)
        self.code = w.Text(description="code folder", **_LABEL)
        self.scoring_script = w.Text(description="scoring script", value="score.py", **_LABEL)
        self.mini_batch_size = w.IntText(description="mini_batch_size", value=int(d.mini_batch_size), **_LABEL)
        self.max_concurrency = w.IntText(
            description="max_concurrency_per_instance", value=d.max_concurrency_per_instance, **_LABEL
        )
        self.instance_count = w.IntText(description="instance_count", value=1, **_LABEL)
        self.error_threshold = w.IntText(description="error_threshold", value=d.error_threshold, **_LABEL)
        self.max_retries = w.IntText(description="max_retries", value=r.max_retries, **_LABEL)
        self.timeout = w.IntText(description="timeout (s)", value=r.timeout, **_LABEL)
        self.output_action = w.Dropdown(
            description="output_action", options=["append_row", "summary_only"], value=d.output_action, **_LABEL
        )
        self.output_file_name = w.Text(description="output_file_name", value=d.output_file_name, **_LABEL)
        self.logging_level = w.Dropdown(
            description="logging_level", options=["warning", "info", "debug"], value=d.logging_level, **_LABEL
        )
        self.set_default = w.Checkbox(description="make it the endpoint's default", value=False)
        fields = [
            self.endpoint,
            self.name,
            self.model,
            self.code,
            self.scoring_script,
            self.mini_batch_size,
            self.max_concurrency,
            self.instance_count,
            self.error_threshold,
            self.max_retries,
            self.timeout,
            self.output_action,
            self.output_file_name,
            self.logging_level,
            self.set_default,
        ]
        for field in fields:
            field.observe(lambda _change: self.check(), names="value")
        return fields

    def spec(self) -> dict[str, Any]:
        """The deployment YAML the form stands for."""
        return {
            "name": self.name.value.strip(),
            "endpoint_name": self.endpoint.value,
            "model": f"azureml:{self.model.value}" if self.model.value else "",
            "code_configuration": {
                "code": self.code.value.strip(),
                "scoring_script": self.scoring_script.value.strip(),
            },
            "resources": {"instance_count": self.instance_count.value},
            "settings": {
                "mini_batch_size": self.mini_batch_size.value,
                "max_concurrency_per_instance": self.max_concurrency.value,
                "error_threshold": self.error_threshold.value,
                "retry_settings": {"max_retries": self.max_retries.value, "timeout": self.timeout.value},
                "output_action": self.output_action.value,
                "output_file_name": self.output_file_name.value.strip(),
                "logging_level": self.logging_level.value,
            },
        }

    def check(self) -> bool:
        """Validate what is typed so far (names and settings), showing the first problem inline."""
        if not self.name.value.strip():
            self.message.value = ""
            return False
        try:
            parse_deployment({**self.spec(), "type": "model"}, "form")
        except BatchnbError as exc:
            self.message.value = _message("error", exc.message)
            return False
        self.message.value = ""
        return True

    def create(self) -> Any:
        return self.client.batch_deployments.create_or_update(
            self.spec(), set_default=self.set_default.value, source="form"
        )

    def done_text(self, result: Any) -> str:
        default = " (default)" if result.get("is_default") else ""
        return f"created deployment {result['name']} of {result['endpoint_name']}{default}"


class JobTable:
    """Recent jobs with live status, refreshed from the store while any of them is running."""

    def __init__(self, client: Any, endpoint_name: str | None = None, limit: int = 20, poll: float = 1.0) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self.limit = limit
        self.poll = poll
        self.table = w.HTML()
        refresh = w.Button(description="Refresh", icon="refresh")
        refresh.on_click(lambda _b: self.refresh())
        self.widget = w.VBox([refresh, self.table])
        self.widget.add_class("batchnb-job-table")
        self._thread: threading.Thread | None = None
        self.refresh()

    def rows(self) -> list[Any]:
        """The jobs shown."""
        return self.client.jobs.list(endpoint_name=self.endpoint_name, limit=self.limit)

    def refresh(self) -> bool:
        """Re-read the jobs; while any is active, keep following them in a daemon thread."""
        active = self._render()
        if active and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._follow, name="batchnb-job-table", daemon=True)
            self._thread.start()
        return active

    def _follow(self) -> None:
        while True:
            time.sleep(self.poll)
            try:
                if not self._render():
                    return
            except Exception:  # a transient store error: keep the last table, try again
                continue

    def _render(self) -> bool:
        jobs = self.rows()
        body = []
        for job in jobs:
            progress, failed, rows = _progress_cells(job)
            # A pipeline job submitted with ``job create`` belongs to no endpoint: its display name instead.
            where = (
                f"{job['endpoint_name']}/{job['deployment_name']}"
                if job["endpoint_name"]
                else str(job.get("display_name") or "")
            )
            body.append(
                f"<tr data-job='{html.escape(job['name'])}' data-type='{html.escape(job['type'])}'>"
                f"<td>{html.escape(job['name'])}</td>"
                f"<td>{static.status_badge(job['status'], 'batchnb-job-table-status')}</td>"
                f"<td>{html.escape(where)}</td>"
                f"<td>{progress}</td><td>{failed}</td><td>{rows}</td>"
                f"<td>{static.local_time(job['created_at'])}</td></tr>"
            )
        self.table.value = (
            f"{_TABLE_STYLE}<table class='batchnb-job-table-rows'><tr><th>job</th><th>status</th>"
            "<th>endpoint/deployment</th><th>progress</th><th>failed</th><th>rows</th><th>created</th></tr>"
            + "".join(body)
            + "</table>"
        )
        return any(j["status"] not in ENDED for j in jobs)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def _progress_cells(job: Any) -> tuple[str, str, str]:
    """(progress, failed, rows) of one row: mini-batches for a batch job, steps for a pipeline job."""
    p = job["progress"]
    if job["type"] == "pipeline":
        counts = p["steps"]
        return html.escape(static.steps_summary(p)), str(counts["failed"]), ""
    if job["type"] == "command":
        return html.escape(static._seconds(p["elapsed_s"])), "", ""
    mb = p["mini_batches"]
    return f"{mb['done'] + mb['failed']}/{mb['total']} mini-batches", str(mb["failed"]), f"{p['rows_written']:,}"
