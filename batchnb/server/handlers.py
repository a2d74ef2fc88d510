"""The REST handlers. Each verb is authenticated (``@tornado.web.authenticated``) and authorized
(``@authorized`` on the resource ``batchnb``), parses its request, runs the core call through
:meth:`BatchnbHandler.call` (:mod:`.base`) and answers JSON.

The verbs that lead to running code (creating a deployment, invoking or dry-running an endpoint,
starting a pipeline job, resuming or rerunning one) also need Jupyter's ``execute`` permission
(``@authorized(EXECUTE)``), so an authorizer can grant reading and writing without it. Every path a
request names must resolve inside the server's root folder, its ``allowed_paths`` or a registered
datastore (a URL must be under one of them); one outside is a 403 naming the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join

from .. import __version__
from ..engine import catalog
from ..errors import NotFoundError, ValidationError
from ..specfile import apply_set, parse_set
from . import API_PREFIX, compare_handlers, dryrun, files, job_handlers
from .base import EXECUTE, BatchnbHandler
from .models import EndpointPatch, InvokeRequest, api_schema

if TYPE_CHECKING:
    from ..client import BatchClient

# Keys of an endpoint record that the core computes; they are not part of its spec.
_ENDPOINT_COMPUTED = ("deployments", "scoring_uri", "provisioning_state", "created_at", "updated_at")


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
    @authorized(EXECUTE)
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
    @authorized(EXECUTE)
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
    """``jobs?endpoint=&deployment=&status=&search=&since=&until=&archived=&sort=&limit=&offset=``: a
    page of jobs (newest first by default) with the total that match (:mod:`batchnb.engine.catalog`);
    step jobs only with ``parent=<pipeline job>``, then in step order. ``POST`` starts a pipeline job
    (``job create -f``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        endpoint = self.get_query_argument("endpoint", None) or None
        deployment = self.get_query_argument("deployment", None) or None
        parent = self.get_query_argument("parent", None) or None
        limit = self.query_int("limit", None, 1, 1_000_000)
        if parent is not None:
            status = self.query_status(steps=True)
            jobs = await self.call(
                lambda c: c.jobs.list(
                    endpoint_name=endpoint,
                    deployment_name=deployment,
                    status=status,
                    limit=limit,
                    parent_job_name=parent,
                )
            )
            self.reply({"jobs": jobs})
            return
        query: dict[str, Any] = {
            "endpoint": endpoint,
            "deployment": deployment,
            "status": self.get_query_argument("status", None) or None,
            "search": self.get_query_argument("search", None) or None,
            "since": self.get_query_argument("since", None) or None,
            "until": self.get_query_argument("until", None) or None,
            "archived": self.get_query_argument("archived", None) or "exclude",
            "sort": self.get_query_argument("sort", None) or "-created_at",
            "limit": limit,
            "offset": self.query_int("offset", 0, 0, 1_000_000_000) or 0,
        }
        self.reply(await self.call(lambda c: catalog.page(c, **query)))

    @tornado.web.authenticated
    @authorized
    @authorized(EXECUTE)
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
    """``jobs/<job>``: one job with its live counters; ``DELETE`` an ended job with its folder (409 while it runs)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        self.reply(await self.call(lambda c: c.jobs.get(job)))

    @tornado.web.authenticated
    @authorized
    async def delete(self, job: str) -> None:
        await self.call(lambda c: catalog.delete(c, job))
        self.no_content()


class JobCancelHandler(BatchnbHandler):
    """``jobs/<job>/cancel``: 200 with the job, 409 when it has ended."""

    @tornado.web.authenticated
    @authorized
    async def post(self, job: str) -> None:
        self.reply(await self.call(lambda c: c.jobs.cancel(job)))


class JobRerunHandler(BatchnbHandler):
    """``jobs/<job>/resume|rerun-failed``: 200 with the job, 409 when its state forbids the action.
    Both run the job's code again, so both need ``execute``."""

    @tornado.web.authenticated
    @authorized
    @authorized(EXECUTE)
    async def post(self, job: str, action: str) -> None:
        latest = self.get_query_argument("latest", "false").lower() in ("true", "1", "yes")
        self.reply(
            await self.call(
                lambda c: c.jobs.resume(job) if action == "resume" else c.jobs.rerun_failed(job, latest=latest)
            )
        )


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


class JobPromoteHandler(BatchnbHandler):
    """``jobs/<job>/promote?as=cli|inputs-yaml|papermill|sdk``: the job's invocation, to run it again
    (the sidebar's "Copy as command")."""

    @tornado.web.authenticated
    @authorized
    async def get(self, job: str) -> None:
        form = self.get_query_argument("as", "cli")

        def run(c: BatchClient) -> dict[str, Any]:
            text = c.jobs.promote(job, form)
            return {"name": c.jobs.get(job, metrics=False)["name"], "form": form, "text": text}

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
    *compare_handlers.ROUTES,
    ("models", ModelsHandler),
    (f"models/(?P<model>{_NAME})", ModelHandler),
    ("computes", ComputesHandler),
    ("components", ComponentsHandler),
    (f"components/(?P<component>{_NAME})", ComponentHandler),
    ("jobs", JobsHandler),
    (f"jobs/(?P<job>{_NAME})", JobHandler),
    (f"jobs/(?P<job>{_NAME})/cancel", JobCancelHandler),
    (f"jobs/(?P<job>{_NAME})/(?P<action>resume|rerun-failed)", JobRerunHandler),
    (f"jobs/(?P<job>{_NAME})/logs", JobLogsHandler),
    (f"jobs/(?P<job>{_NAME})/promote", JobPromoteHandler),
    (f"jobs/(?P<job>{_NAME})/outputs", JobOutputsHandler),
    *job_handlers.ROUTES,
    ("workspace", WorkspaceHandler),
    ("schema", SchemaHandler),
]


def route_table(base_url: str) -> list[tuple[str, type[BatchnbHandler]]]:
    """The routes with the server's base URL, each with an optional trailing slash."""
    return [(url_path_join(base_url, API_PREFIX, pattern) + "/?", handler) for pattern, handler in ROUTES]
