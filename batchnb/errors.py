"""The one exception tree of batchnb.

Every error a user can cause or see is one of these, so that every front end (CLI, magics, REST
handlers, widgets) can catch ``BatchnbError`` and show it the same way::

    BatchnbError                    exit 1, HTTP 500  base class; never raised directly
    ├── UsageError                  exit 2, HTTP 400  a malformed command line or request
    ├── ValidationError             exit 2, HTTP 400  a bad value; names the field, file or value
    │   ├── InvalidNameError        exit 2, HTTP 400  a name that breaks Azure's naming rule
    │   ├── PathNotAllowedError     exit 2, HTTP 403  a path outside the folders a server may use
    │   └── EnvironmentBuildError   exit 2, HTTP 400  an environment that cannot be built (the resolver says why)
    ├── NotFoundError               exit 3, HTTP 404  an unknown endpoint, deployment, asset or job
    ├── ConflictError               exit 4, HTTP 409  already exists; an output file that exists
    │   └── InvalidStateError       exit 4, HTTP 409  an action the object's state forbids
    │       └── JobWaitTimeoutError exit 4, HTTP 409  a job waited for has not ended within the timeout
    ├── MissingDependencyError      exit 5, HTTP 501  an optional extra is not installed
    ├── JobFailedError              exit 6, HTTP 500  a followed job did not complete; a dry run failed
    ├── WorkspaceError              exit 7, HTTP 500  the workspace or its store is unusable
    ├── ComputeError                exit 8, HTTP 502  a compute target cannot be reached or used
    │   └── ClusterLostError        exit 8, HTTP 502  a job's Dask scheduler went away mid-job (resumable)
    └── StorageError                exit 9, HTTP 502  a storage service refused or cannot be reached

Errors raised by other libraries (sqlite3, yaml, pydantic, pyarrow, the storage SDKs) are translated
into these at the boundary where they occur, so callers only ever catch ours.
"""

from __future__ import annotations


class BatchnbError(Exception):
    """Base class of every batchnb error.

    Attributes:
        exit_code: The process exit code the CLI uses for this error.
        http_status: The HTTP status the REST API uses for this error.
    """

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        """Return the error as a JSON-ready record for APIs."""
        return {"error": type(self).__name__, "message": self.message}


class UsageError(BatchnbError):
    """A command line or request that cannot be understood."""

    exit_code = 2
    http_status = 400


class ValidationError(BatchnbError):
    """A value that breaks a rule. The message names the field, file or value."""

    exit_code = 2
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_dict(self) -> dict[str, object]:
        """Return the error as a JSON-ready record, with the offending field if known."""
        out = super().to_dict()
        if self.field:
            out["field"] = self.field
        return out


class InvalidNameError(ValidationError):
    """A name that does not follow the naming rule for its kind."""


class PathNotAllowedError(ValidationError):
    """A path (or URL) that resolves outside the folders the caller may use (see :mod:`batchnb.confine`)."""

    http_status = 403


class EnvironmentBuildError(ValidationError):
    """An environment whose packages cannot be installed; the message is the resolver's own, naming the package."""


class NotFoundError(BatchnbError):
    """An endpoint, deployment, asset or job that does not exist."""

    exit_code = 3
    http_status = 404


class ConflictError(BatchnbError):
    """Something that already exists and must not be overwritten."""

    exit_code = 4
    http_status = 409


class InvalidStateError(ConflictError):
    """An action that the current state of the object does not allow (e.g. resume a Completed job)."""


class JobWaitTimeoutError(InvalidStateError, TimeoutError):
    """A job waited for with a timeout had not ended when it ran out (the job goes on).

    Also Python's ``TimeoutError``, which ``jobs.wait`` raised before it was one of batchnb's errors."""


class MissingDependencyError(BatchnbError):
    """An optional dependency is missing; the message names the pip extra that provides it."""

    exit_code = 5
    http_status = 501


class JobFailedError(BatchnbError):
    """A job that was waited for or streamed ended other than Completed, or a dry run's scoring script raised."""

    exit_code = 6
    http_status = 500


class WorkspaceError(BatchnbError):
    """The workspace folder or its database cannot be used."""

    exit_code = 7
    http_status = 500


class ComputeError(BatchnbError):
    """A compute target (an SSH host, a cluster) cannot be reached or used; the message names it."""

    exit_code = 8
    http_status = 502


class ClusterLostError(ComputeError):
    """A job's Dask scheduler went away mid-job; the job is Interrupted and resumed when it is back.

    Killed, its host down, the network cut: the job ends Interrupted, keeping its committed
    mini-batches, and its compute's agent resumes it when the scheduler answers again. The message
    names the scheduler."""


class StorageError(BatchnbError):
    """A storage service (Azure Storage, S3, GCS) refused a request or cannot be reached; the message
    names the datastore or URL and carries the service's own words (a wrong key says so)."""

    exit_code = 9
    http_status = 502
