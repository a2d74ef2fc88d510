"""The base of every REST handler: the worker-thread call under the server's path rule, JSON in and
out, and one error mapping for every route.

:meth:`BatchnbHandler.call` runs the core call in one of batchnb's worker threads (a locked database
then blocks that thread, never the server's event loop nor its default executor), confined to the
server's allowed folders (:mod:`batchnb.confine`). :meth:`BatchnbHandler.write_error`: a
:class:`BatchnbError` answers its ``http_status`` with ``{"error", "message", "field"?}``; a malformed
body is a 400 naming the problem; anything unexpected is a 500 with a message, and its traceback
goes to the server log.
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
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado.escape import url_escape

from ..confine import confined
from ..engine import state as job_state
from ..errors import BatchnbError, UsageError, ValidationError
from ..pipelines.submit import NOT_STARTED
from ..schemas import validate_spec
from ..specfile import MAX_YAML_DEPTH, check_nesting
from . import API_PREFIX
from .extension import SETTINGS_KEY, BatchnbServer

if TYPE_CHECKING:
    from ..client import BatchClient

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

AUTH_RESOURCE = "batchnb"
# The action (besides write) of the verbs that lead to running the user's code.
EXECUTE = "execute"


class BatchnbHandler(APIHandler):
    """The base of every batchnb handler: the resource name, the worker-thread call, JSON in and out."""

    auth_resource = AUTH_RESOURCE

    @property
    def batchnb(self) -> BatchnbServer:
        state: BatchnbServer = self.settings[SETTINGS_KEY]
        return state

    async def call(self, fn: Callable[[BatchClient], T]) -> T:
        """Run ``fn(client)`` in one of batchnb's worker threads (the event loop never waits on the store).

        Every path the call resolves must lie inside the server's allowed folders (:mod:`batchnb.confine`).
        """
        state = self.batchnb

        def run() -> T:
            client = state.client()
            with confined(state.allowed_roots(client)):
                return fn(client)

        return await asyncio.get_running_loop().run_in_executor(state.executor, run)

    def api_url(self, *parts: str) -> str:
        """The URL of a route of this API, with the server's base URL (each part percent-encoded)."""
        return url_path_join(self.base_url, API_PREFIX, *(url_escape(p, plus=False) for p in parts))

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
        except RecursionError:  # the decoder recurses once per level
            raise ValidationError(f"the request body is nested deeper than {MAX_YAML_DEPTH} levels") from None
        check_nesting(data, "the request body")
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
        elif isinstance(exc, pydantic.ValidationError):  # one the core did not translate: still bad input
            self.set_status(400)
            payload = {"error": "ValidationError", "message": str(exc)}
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
