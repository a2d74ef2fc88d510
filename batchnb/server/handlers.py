"""The REST handlers. Each verb is authenticated (``@tornado.web.authenticated``) and authorized
(``@authorized`` on the resource ``batchnb``), parses its request, runs the core call in one of
batchnb's worker threads (a locked database then blocks that thread, never the server's event loop
nor its default executor) and answers JSON.

One error mapping for every route (:meth:`BatchnbHandler.write_error`): a :class:`BatchnbError` answers
its ``http_status`` with ``{"error", "message", "field"?}``; a malformed body is a 400 naming the
problem; anything unexpected is a 500 with a message, and its traceback goes to the server log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from http.client import responses
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from .. import __version__
from ..engine import state as job_state
from ..errors import BatchnbError, NotFoundError, UsageError, ValidationError
from ..pipelines.submit import NOT_STARTED
from ..schemas import validate_spec
from ..specfile import apply_set, parse_set
from . import API_PREFIX, dryrun, files
from .extension import SETTINGS_KEY, BatchnbServer
from .models import EndpointPatch, InvokeRequest, api_schema

if TYPE_CHECKING:
    from ..client import BatchClient

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

AUTH_RESOURCE = "batchnb"
# Keys of an endpoint record that the core computes; they are not part of its spec.
_ENDPOINT_COMPUTED = ("deployments", "scoring_uri", "provisioning_state", "created_at", "updated_at")


class BatchnbHandler(APIHandler):
    """The base of every batchnb handler: the resource name, the worker-thread call, JSON in and out."""

    auth_resource = AUTH_RESOURCE

    @property
    def batchnb(self) -> BatchnbServer:
        state: BatchnbServer = self.settings[SETTINGS_KEY]
        return state

    async def call(self, fn: Callable[[BatchClient], T]) -> T:
        """Run ``fn(client)`` in one of batchnb's worker threads (the event loop never waits on the store)."""
        state = self.batchnb
        return await asyncio.get_running_loop().run_in_executor(state.executor, lambda: fn(state.client()))

    def api_url(self, *parts: str) -> str:
        """The URL of a route of this API, with the server's base URL."""
        return url_path_join(self.base_url, API_PREFIX, *parts)

    # -- requests ------------------------------------------------------------------------------

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object; an empty body is ``{}``."""
        raw = self.request.body
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValidationError(
                f"the request body must be a JSON object, got a JSON {_json_type(data)}", field="(body)"
            )
        return data

    def parse(self, model: type[M]) -> M:
        """The request body validated as ``model``; a 400 naming the field otherwise."""
        parsed: M = validate_spec(model, self.json_body(), "request body")
        return parsed

    def query_int(self, name: str, default: int | None, low: int, high: int) -> int | None:
        """An integer query parameter within ``[low, high]``."""
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError(f"query parameter {name}: {raw!r} is not an integer", field=name) from None
        if not low <= value <= high:
            raise ValidationError(f"query parameter {name}: must be between {low} and {high} (got {value})", field=name)
        return value

    def query_bool(self, name: str) -> bool:
        """A boolean query parameter: true/1/yes or false/0/no; absent is false."""
        raw = (self.get_query_argument(name, "") or "").strip().lower()
        if raw in ("", "false", "0", "no"):
            return False
        if raw in ("true", "1", "yes"):
            return True
        raise ValidationError(f"query parameter {name}: {raw!r} is not true or false", field=name)

    def query_status(self, steps: bool = False) -> str | None:
        """The ``status`` query parameter, one of the job statuses (or, for ``steps``, ``NotStarted`` too)."""
        status = self.get_query_argument("status", None) or None
        allowed = (*job_state.ALL, NOT_STARTED) if steps else job_state.ALL
        if status is not None and status not in allowed:
            raise ValidationError(
                f"query parameter status: {status!r} is not a job status ({', '.join(allowed)})",
                field="status",
            )
        return status

    def invoked_by(self) -> str:
        """Who a job is recorded as invoked by: the Jupyter user's name."""
        user = self.current_user
        return getattr(user, "username", None) or str(user)

    # -- responses -----------------------------------------------------------------------------

    def reply(self, data: Any, status: int = 200, location: str | None = None) -> None:
        """Answer ``data`` as JSON."""
        self.set_status(status)
        if location:
            self.set_header("Location", location)
        self.finish(json.dumps(data, default=str))

    def no_content(self) -> None:
        """Answer 204 with no body."""
        self.set_status(204)
        self.finish()

    def endpoint_out(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        """An endpoint record with its invocation URL under this server's base URL."""
        return {**endpoint, "scoring_uri": self.api_url("endpoints", endpoint["name"], "jobs")}

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as ``{"error", "message", "field"?}`` with the status of the batchnb error."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, BatchnbError):
            self.set_status(exc.http_status)
            payload = exc.to_dict()
        elif isinstance(exc, tornado.web.HTTPError):
            reason = responses.get(status_code, "Error")
            message = exc.log_message or reason
            if status_code == 403 and not exc.log_message:
                message = "this request needs an authenticated Jupyter user (the server's token or a login cookie)"
            if exc.args and exc.log_message:
                with contextlib.suppress(TypeError, ValueError):
                    message = exc.log_message % exc.args
            payload = {"error": "".join(reason.split()), "message": message}
        elif exc is not None:
            payload = {
                "error": "InternalServerError",
                "message": f"unexpected error: {type(exc).__name__}: {exc} (the traceback is in the server log)",
            }
        else:
            reason = responses.get(status_code, "Error")
            payload = {"error": "".join(reason.split()), "message": reason}
        self.finish(json.dumps(payload))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """A user's mistake is one line in the log; anything unexpected keeps its traceback."""
        if isinstance(value, BatchnbError) and value.http_status < 500:
            self.log.info(
                "batchnb: %s %s -> %s: %s", self.request.method, self.request.uri, type(value).__name__, value
            )
        elif isinstance(value, BatchnbError):
            self.log.error(
                "batchnb: %s %s -> %s: %s", self.request.method, self.request.uri, type(value).__name__, value
            )
        else:
            super().log_exception(typ, value, tb)


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")


# --- endpoints -------------------------------------------------------------------------------------


class EndpointsHandler(BatchnbHandler):
    """``endpoints``: list, create (or update) from a spec."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        endpoints = await self.call(lambda c: c.batch_endpoints.list())
        self.reply({"endpoints": [self.endpoint_out(e) for e in endpoints]})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.json_body()
        endpoint = await self.call(lambda c: c.batch_endpoints.create_or_update(spec))
        created = endpoint["created_at"] == endpoint["updated_at"]
        self.reply(
            self.endpoint_out(endpoint),
            201 if created else 200,
            location=self.api_url("endpoints", endpoint["name"]),
        )


def _patch_endpoint(client: BatchClient, name: str, patch: EndpointPatch) -> dict[str, Any]:
    """Apply ``set`` then ``defaults`` to the endpoint's spec, in one write.

    The default is set as a string (not through ``--set`` parsing, where a deployment named
    ``yes`` or ``null`` would become a YAML boolean or nothing).
    """
    current = {k: v for k, v in client.batch_endpoints.get(name).items() if k not in _ENDPOINT_COMPUTED}
    changed = apply_set(current, parse_set(patch.set))
    if changed.get("name") != name:
        raise ValidationError("name: an endpoint cannot be renamed", field="name")
    if patch.defaults is not None:
        defaults = changed.get("defaults")
        changed["defaults"] = {
            **(defaults if isinstance(defaults, dict) else {}),
            "deployment_name": patch.defaults.deployment_name,
        }
    return client.batch_endpoints.create_or_update(changed)


class EndpointHandler(BatchnbHandler):
    """``endpoints/<endpoint>``: show, change the default or ``--set``, delete."""

    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str) -> None:
        self.reply(self.endpoint_out(await self.call(lambda c: c.batch_endpoints.get(endpoint))))

    @tornado.web.authenticated
    @authorized
    async def patch(self, endpoint: str) -> None:
        patch = self.parse(EndpointPatch)
        self.reply(self.endpoint_out(await self.call(lambda c: _patch_endpoint(c, endpoint, patch))))

    @tornado.web.authenticated
    @authorized
    async def delete(self, endpoint: str) -> None:
        await self.call(lambda c: c.batch_endpoints.delete(endpoint))
        self.no_content()


# --- deployments -----------------------------------------------------------------------------------


class DeploymentsHandler(BatchnbHandler):
    """``endpoints/<endpoint>/deployments``: list, create (or a new revision)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str) -> None:
        deployments = await self.call(lambda c: c.batch_deployments.list(endpoint))
        self.reply({"deployments": deployments})

    @tornado.web.authenticated
    @authorized
    async def post(self, endpoint: str) -> None:
        spec = self.json_body()
        given = spec.get("endpoint_name")
        if given is not None and given != endpoint:
            raise ValidationError(
                f"request body: endpoint_name {given!r} differs from the endpoint in the URL ({endpoint!r})",
                field="endpoint_name",
            )
        set_default = self.query_bool("set_default")
        skip = self.query_bool("skip_script_validation")
        root = self.batchnb.root_dir
        deployment = await self.call(
            lambda c: c.batch_deployments.create_or_update(
                spec,
                endpoint_name=endpoint,
                base_dir=root,
                set_default=set_default,
                skip_script_validation=skip,
                source="request body",
            )
        )
        self.reply(
            deployment,
            201 if deployment["revision"] == 1 else 200,
            location=self.api_url("endpoints", endpoint, "deployments", deployment["name"]),
        )


class DeploymentHandler(BatchnbHandler):
    """``endpoints/<endpoint>/deployments/<deployment>``: show, delete."""

    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str, deployment: str) -> None:
        self.reply(await self.call(lambda c: c.batch_deployments.get(deployment, endpoint)))

    @tornado.web.authenticated
    @authorized
    async def delete(self, endpoint: str, deployment: str) -> None:
        await self.call(lambda c: c.batch_deployments.delete(deployment, endpoint))
        self.no_content()


# --- invoking and listing jobs ---------------------------------------------------------------------


def _invoke_kwargs(request: InvokeRequest) -> dict[str, Any]:
    """The keyword arguments of ``jobs.invoke`` for a request (JSON-ready, for the dry-run process too)."""
    data = request.model_dump(mode="json", exclude_none=True, exclude={"dry_run"})
    if "set" in data:
        data["set_values"] = data.pop("set")
    return data


class EndpointJobsHandler(BatchnbHandler):
    """``endpoints/<endpoint>/jobs``: the endpoint's jobs; ``POST`` invokes it (its stable invocation URL).

    An invocation answers ``201 Created`` with the new job (status ``Queued``) and its URL in
    ``Location`` as soon as the job is recorded and its supervisor started; the job runs on, and
    ``GET jobs/<name>`` follows it. A dry run creates no job and answers ``200`` with its result.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self, endpoint: str) -> None:
        deployment = self.get_query_argument("deployment", None) or None
        status = self.query_status()
        limit = self.query_int("limit", None, 1, 1_000_000)

        def run(c: BatchClient) -> list[Any]:
            c.batch_endpoints.get(endpoint)  # an unknown endpoint is a 404, not an empty list
            return c.jobs.list(endpoint_name=endpoint, deployment_name=deployment, status=status, limit=limit)

        self.reply({"jobs": await self.call(run)})

    @tornado.web.authenticated
    @authorized
    async def post(self, endpoint: str) -> None:
        request = self.parse(InvokeRequest)
        kwargs = _invoke_kwargs(request)
        state = self.batchnb
        if request.dry_run:
            record = await self.call(
                lambda c: dryrun.run(c.workspace.root, endpoint, kwargs, state.root_dir, state.dry_run_timeout)
            )
            self.reply(record)
            return
        who = self.invoked_by()
        job = await self.call(lambda c: c.jobs.invoke(endpoint, **kwargs, invoked_by=who, base_dir=state.root_dir))
        self.reply(job, 201, location=self.api_url("jobs", job["name"]))


# --- models and computes ---------------------------------------------------------------------------


class ModelsHandler(BatchnbHandler):
    """``models``: the latest version of each model; register a new version."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"models": await self.call(lambda c: c.models.list())})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.json_body()
        root = self.batchnb.root_dir
        model = await self.call(lambda c: c.models.create_or_update(spec, base_dir=root))
        self.reply(model, 201, location=self.api_url("models", model["name"]))


class ModelHandler(BatchnbHandler):
    """``models/<model>``: every version of one model, newest first."""

    @tornado.web.authenticated
    @authorized
    async def get(self, model: str) -> None:
        versions = await self.call(lambda c: c.models.list(model))
        if not versions:
            raise NotFoundError(f"model {model} is not registered in this workspace")
        self.reply({"models": versions})


class ComputesHandler(BatchnbHandler):
    """``computes``: the compute targets, ``local`` first."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"computes": await self.call(lambda c: c.computes.list())})


class ComponentsHandler(BatchnbHandler):
    """``components``: the latest version of each registered component (command and pipeline)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"components": await self.call(lambda c: c.components.list())})


class ComponentHandler(BatchnbHandler):
    """``components/<component>``: every version of one component, newest first."""

    @tornado.web.authenticated
    @authorized
    async def get(self, component: str) -> None:
        versions = await self.call(lambda c: c.components.list(component))
        if not versions:
            raise NotFoundError(f"component {component} is not registered in this workspace")
        self.reply({"components": versions})


# --- jobs --------------------------------------------------------------------------------------------


class JobsHandler(BatchnbHandler):
    """``jobs?endpoint=&deployment=&status=&limit=``: jobs, newest first (step jobs only with
    ``parent=<pipeline job>``, then in step order); ``POST`` starts a pipeline job (``job create -f``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        endpoint = self.get_query_argument("endpoint", None) or None
        deployment = self.get_query_argument("deployment", None) or None
        parent = self.get_query_argument("parent", None) or None
        status = self.query_status(steps=parent is not None)
        limit = self.query_int("limit", None, 1, 1_000_000)
        jobs = await self.call(
            lambda c: c.jobs.list(
                endpoint_name=endpoint, deployment_name=deployment, status=status, limit=limit, parent_job_name=parent
            )
        )
        self.reply({"jobs": jobs})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.json_body()
        overrides = spec.pop("set", None)
        if overrides is not None and (
            not isinstance(overrides, list) or not all(isinstance(x, str) for x in overrides)
        ):
            raise ValidationError("request body: set must be a list of 'key=value' strings", field="set")
        root, who = self.batchnb.root_dir, self.invoked_by()
        job = await self.call(
            lambda c: c.jobs.create_or_update(
                spec, base_dir=root, set_values=overrides, invoked_by=who, source="request body"
            )
        )
        self.reply(job, 201, location=self.api_url("jobs", job["name"]))


class JobHandler(BatchnbHandler):
    """``jobs/<job>``: one job with its live counters."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        self.reply(await self.call(lambda c: c.jobs.get(job)))


class JobActionHandler(BatchnbHandler):
    """``jobs/<job>/cancel|resume|rerun-failed``: 200 with the job, 409 when its state forbids the action."""

    @tornado.web.authenticated
    @authorized
    async def post(self, job: str, action: str) -> None:
        def run(c: BatchClient) -> Any:
            if action == "cancel":
                return c.jobs.cancel(job)
            if action == "resume":
                return c.jobs.resume(job)
            return c.jobs.rerun_failed(job)

        self.reply(await self.call(run))


class JobLogsHandler(BatchnbHandler):
    """``jobs/<job>/logs?lines=N``: the tails of job_result.txt, user/error.txt and sys/master_role.txt."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        lines = self.query_int("lines", 100, 1, 100_000)
        assert lines is not None

        def run(c: BatchClient) -> dict[str, Any]:
            record = c.jobs.get(job, metrics=False)
            return {
                "name": record["name"],
                "status": record["status"],
                "logs_dir": record["logs_dir"],
                "lines": lines,
                "files": files.job_logs(record["logs_dir"], lines, record["type"]),
            }

        self.reply(await self.call(run))


class JobOutputsHandler(BatchnbHandler):
    """``jobs/<job>/outputs?output=<name>``: the files of one named output of the job, with their sizes.

    A batch job's one output is ``score``; a pipeline (or step) job's output must be named unless it
    has only one. The listing shows what is there now, complete or not (``GET jobs/<job>`` says).
    """

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        given = self.get_query_argument("output", None) or None

        def run(c: BatchClient) -> dict[str, Any]:
            record = c.jobs.get(job, metrics=False)
            outputs = record["outputs"]
            name = given or ("score" if "score" in outputs or len(outputs) != 1 else next(iter(outputs)))
            if name not in outputs:
                named = ", ".join(outputs) or "none"
                raise ValidationError(
                    f"job {record['name']} has no output {name!r}; its outputs are: {named} "
                    "(name one with ?output=<name>)",
                    field="output",
                )
            listing = files.list_outputs(outputs[name]["path"])
            return {"name": record["name"], "status": record["status"], "output": name, **listing}

        self.reply(await self.call(run))


# --- the workspace and the schema --------------------------------------------------------------------


class WorkspaceHandler(BatchnbHandler):
    """``workspace``: the workspace this server uses, and which rule chose it."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        state = self.batchnb

        def run(c: BatchClient) -> dict[str, Any]:
            return {
                "root": str(c.workspace.root),
                "db_path": str(c.workspace.db_path),
                "source": state.workspace_path()[1],
                "version": __version__,
            }

        self.reply(await self.call(run))


class SchemaHandler(BatchnbHandler):
    """``schema``: the JSON Schema of the wire models and the route table."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(api_schema(__version__))


_NAME = "[^/]+"
ROUTES: list[tuple[str, type[BatchnbHandler]]] = [
    ("endpoints", EndpointsHandler),
    (f"endpoints/(?P<endpoint>{_NAME})", EndpointHandler),
    (f"endpoints/(?P<endpoint>{_NAME})/deployments", DeploymentsHandler),
    (f"endpoints/(?P<endpoint>{_NAME})/deployments/(?P<deployment>{_NAME})", DeploymentHandler),
    (f"endpoints/(?P<endpoint>{_NAME})/jobs", EndpointJobsHandler),
    ("models", ModelsHandler),
    (f"models/(?P<model>{_NAME})", ModelHandler),
    ("computes", ComputesHandler),
    ("components", ComponentsHandler),
    (f"components/(?P<component>{_NAME})", ComponentHandler),
    ("jobs", JobsHandler),
    (f"jobs/(?P<job>{_NAME})", JobHandler),
    (f"jobs/(?P<job>{_NAME})/(?P<action>cancel|resume|rerun-failed)", JobActionHandler),
    (f"jobs/(?P<job>{_NAME})/logs", JobLogsHandler),
    (f"jobs/(?P<job>{_NAME})/outputs", JobOutputsHandler),
    ("workspace", WorkspaceHandler),
    ("schema", SchemaHandler),
]


def route_table(base_url: str) -> list[tuple[str, type[BatchnbHandler]]]:
    """The routes with the server's base URL, each with an optional trailing slash."""
    return [(url_path_join(base_url, API_PREFIX, pattern) + "/?", handler) for pattern, handler in ROUTES]
