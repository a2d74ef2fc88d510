"""Dry runs for the REST API, in a child process.

A dry run imports the user's scoring script and calls ``init()`` and ``run()`` in the calling
process, changing ``os.environ``, ``sys.path`` and ``sys.argv`` while it runs. Inside the Jupyter
server that would expose every other request thread to those changes, and put the user's code
(its memory, a hang, a crash) in the server itself. So the server runs it here, in
``python -m batchnb.server.dryrun REQUEST RESULT``, with a time limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from .. import errors
from ..confine import confined, current_roots
from ..entities import Entity
from ..errors import BatchnbError, ValidationError


class DryRunError(BatchnbError):
    """The dry-run process failed in a way that is not a batchnb error (its message says how)."""

    http_status = 500


class DryRunTimeout(BatchnbError):
    """The dry run took longer than ``c.BatchnbServer.dry_run_timeout``."""

    http_status = 504


def run(workspace: Path, endpoint: str, kwargs: dict[str, Any], base_dir: Path, timeout: float) -> Entity:
    """Run ``jobs.invoke(endpoint, dry_run=True, **kwargs)`` in a child process and return its record.

    A batchnb error in the child is raised here as the same class, message and field. The child
    keeps the caller's path confinement (:func:`batchnb.confine.current_roots`).
    """
    with tempfile.TemporaryDirectory(prefix="batchnb-dry-run-") as scratch:
        request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request.write_text(
            json.dumps(
                {
                    "workspace": str(workspace),
                    "endpoint": endpoint,
                    "kwargs": kwargs,
                    "base_dir": str(base_dir),
                    "roots": current_roots(),
                }
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "batchnb.server.dryrun", str(request), str(result)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the scoring script's prints
            stderr=subprocess.PIPE,
            cwd=base_dir,
            start_new_session=True,  # so a timeout can stop whatever the script started too
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise DryRunTimeout(
                f"the dry run of endpoint {endpoint} took longer than {timeout:g} s and was stopped"
            ) from None
        if not result.exists():
            tail = stderr.decode("utf-8", errors="replace").strip().splitlines()[-5:]
            raise DryRunError(
                f"the dry-run process ended with exit code {proc.returncode} and no result"
                + (": " + " | ".join(tail) if tail else "")
            )
        answer = json.loads(result.read_text())
    if answer["ok"]:
        return Entity(answer["result"])
    raise _error(answer["error"])


def _error(record: dict[str, Any]) -> BatchnbError:
    cls = getattr(errors, str(record.get("error")), None)
    message = str(record.get("message"))
    if isinstance(cls, type) and issubclass(cls, ValidationError):
        return cls(message, field=record.get("field"))
    if isinstance(cls, type) and issubclass(cls, BatchnbError) and cls is not BatchnbError:
        return cls(message)
    return DryRunError(message)


def main(argv: list[str] | None = None) -> int:
    """The child: read the request, run the dry run, write the answer; never raise."""
    request_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    answer: dict[str, Any]
    try:
        request = json.loads(Path(request_path).read_text())
        from ..client import BatchClient

        client = BatchClient(request["workspace"])
        roots = request.get("roots")
        with confined(roots) if roots is not None else contextlib.nullcontext():
            record = client.jobs.invoke(
                request["endpoint"], **request["kwargs"], base_dir=Path(request["base_dir"]), dry_run=True
            )
        answer = {"ok": True, "result": dict(record)}
    except BatchnbError as exc:
        answer = {"ok": False, "error": exc.to_dict()}
    except Exception as exc:
        traceback.print_exc()
        answer = {"ok": False, "error": {"error": "DryRunError", "message": f"{type(exc).__name__}: {exc}"}}
    Path(result_path).write_text(json.dumps(answer, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
