"""``batchnb``: the command line, mirroring ``az ml`` so Azure's scripts run with ``batchnb`` in its place.

Built on argparse, which, like az, accepts any unambiguous prefix of a long flag (Azure's own
scripts write ``--endpoint`` for ``--endpoint-name``). The global flags ``--query``, ``-o``,
``--debug`` and ``--workspace`` work before or after the command. A user mistake prints one
``ERROR:`` line and exits non-zero (the code comes from the error class); ``--debug`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ..engine.state import ALL as JOB_STATUSES
from ..errors import BatchnbError, UsageError
from . import commands as cmd
from .render import FORMATS, check_query, render


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors are printed one way."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def _globals(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--workspace", "-w", default=default, help="workspace folder (see `batchnb workspace show`)")
    parser.add_argument("--query", default=default, help="JMESPath query applied to the result")
    parser.add_argument(
        "--output",
        "-o",
        default=argparse.SUPPRESS if suppress else "json",
        choices=FORMATS,
        help="output format (default: json)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS if suppress else False, help="show tracebacks"
    )


Arg = tuple[tuple[str, ...], dict[str, Any]]


def _a(*flags: str, **kwargs: Any) -> Arg:
    return flags, kwargs


NAME = _a("--name", "-n")
NAME_REQ = _a("--name", "-n", required=True)
FILE = _a("--file", "-f", help="Azure ML YAML file")
SET = _a("--set", nargs="+", action="extend", metavar="KEY=VALUE", help="set a field: --set a.b=c")
DESC = _a("--description", "-d")
VERSION = _a("--version", "-v")
ENDPOINT = _a("--endpoint-name", "-e", required=True)
YES = _a("--yes", "-y", action="store_true", help="do not ask for confirmation")
NO_WAIT = _a("--no-wait", action="store_true", help="accepted for az compatibility; operations are immediate")

Command = tuple[Callable[..., Any], list[Arg], str]

GROUPS: dict[str, tuple[tuple[str, ...], str, dict[str, Command]]] = {
    "model": (
        (),
        "register and show models",
        {
            "create": (
                cmd.model_create,
                [
                    NAME,
                    VERSION,
                    _a("--path", "-p", help="a file or folder, or an MLflow runs:/ or models:/ URI"),
                    _a("--type", "-t"),
                    FILE,
                    SET,
                    DESC,
                    _a("--tags", nargs="+"),
                    _a(
                        "--trust-types",
                        action="store_true",
                        help="trust the types a skops-serialized MLflow model needs (listed when refused)",
                    ),
                ],
                "register a model version from a file or folder, or an MLflow runs:/ or models:/ URI",
            ),
            "show": (cmd.asset_show("models"), [NAME_REQ, VERSION, _a("--label", "-l")], "show a model version"),
            "list": (cmd.asset_list("models"), [NAME], "list models (or the versions of one)"),
        },
    ),
    "data": (
        (),
        "register and show data assets",
        {
            "create": (
                cmd.data_create,
                [NAME, VERSION, _a("--path", "-p"), _a("--type", "-t"), FILE, SET, DESC],
                "register a data asset version",
            ),
            "show": (cmd.asset_show("data"), [NAME_REQ, VERSION, _a("--label", "-l")], "show a data asset version"),
            "list": (cmd.asset_list("data"), [NAME], "list data assets"),
        },
    ),
    "environment": (
        (),
        "environments, built with uv",
        {
            "create": (
                cmd.environment_create,
                [
                    NAME,
                    VERSION,
                    _a("--image", "-i", help="recorded, not used locally"),
                    _a("--conda-file", "-c", help="a conda environment file, or a pip requirements file (.txt)"),
                    FILE,
                    SET,
                    DESC,
                ],
                "record an environment version and build it now",
            ),
            "show": (
                cmd.environment_show,
                [NAME_REQ, VERSION, _a("--label", "-l")],
                "show an environment and its build (status, Python, packages, size on disk)",
            ),
            "list": (cmd.asset_list("environments"), [NAME], "list environments"),
            "delete": (
                cmd.environment_delete,
                [NAME_REQ, _a("--version", "-v", required=True), YES],
                "delete an environment version (refused while a deployment uses it)",
            ),
        },
    ),
    "datastore": (
        (),
        "named data roots",
        {
            "create": (
                cmd.datastore_create,
                [NAME, _a("--path", "-p"), _a("--type", "-t"), FILE, SET, DESC],
                "create a datastore over a folder, an fsspec URL, or an Azure container, S3 or GCS bucket",
            ),
            "show": (cmd.datastore_show, [NAME_REQ], "show a datastore (credentials masked, their kind said)"),
            "list": (cmd.datastore_list, [], "list datastores"),
            "check": (cmd.datastore_check, [NAME_REQ], "list a datastore's root: a wrong key fails at once"),
        },
    ),
    "compute": (
        (),
        "compute targets",
        {
            "create": (
                cmd.compute_create,
                [
                    NAME,
                    _a("--type", "-t"),
                    _a("--min-instances", type=int),
                    _a("--max-instances", type=int),
                    _a("--size"),
                    _a("--idle-time-before-scale-down", type=int),
                    _a("--hosts", help="ssh: host[:port],host[:port],..."),
                    _a("--workers-per-host", type=int),
                    _a("--python", help="ssh: the Python to run on the hosts (default: this one)"),
                    _a("--ssh-user"),
                    _a("--ssh-key", help="ssh: private key path (only the path is stored)"),
                    _a("--ssh-port", type=int),
                    _a("--known-hosts", help="ssh: known_hosts file (default ~/.ssh/known_hosts)"),
                    _a("--address", help="dask: the scheduler of a cluster that already runs (tcp://host:8786)"),
                    _a("--tls-ca-file", help="dask: CA certificate path (only the path is stored)"),
                    _a("--tls-client-cert", help="dask: client certificate path"),
                    _a("--tls-client-key", help="dask: client key path"),
                    FILE,
                    SET,
                    DESC,
                    NO_WAIT,
                ],
                "create a compute (local: this machine; ssh: a Dask cluster it starts; dask: one that runs)",
            ),
            "check": (
                cmd.compute_check,
                [
                    NAME_REQ,
                    _a("--endpoint-name", "-e", help="also check each host for this endpoint's deployment's packages"),
                    _a("--deployment-name", "-d", help="the deployment (default: the endpoint's default)"),
                    _a("--input", "-i", help="a data path or URL each host must reach"),
                ],
                "reach every host or Dask worker of a compute: one row each (threads, memory, versions, data)",
            ),
            "start": (cmd.compute_start, [NAME_REQ], "start the compute's agent (resumes jobs a lost agent left)"),
            "stop": (cmd.compute_stop, [NAME_REQ], "stop the compute's agent, its workers and jobs (Interrupted) now"),
            "show": (cmd.compute_show, [NAME_REQ], "show a compute"),
            "list": (cmd.compute_list, [], "list computes"),
            "delete": (cmd.compute_delete, [NAME_REQ, YES, NO_WAIT], "delete a compute"),
        },
    ),
    "batch-endpoint": (
        ("endpoint",),
        "batch endpoints",
        {
            "create": (cmd.endpoint_create, [NAME, FILE, SET, DESC, NO_WAIT], "create a batch endpoint"),
            "show": (cmd.endpoint_show, [NAME_REQ], "show an endpoint"),
            "list": (cmd.endpoint_list, [], "list endpoints"),
            "update": (
                cmd.endpoint_update,
                [NAME, FILE, SET, NO_WAIT],
                "update an endpoint, e.g. --set defaults.deployment_name=D",
            ),
            "delete": (cmd.endpoint_delete, [NAME_REQ, YES, NO_WAIT], "delete an endpoint and its deployments"),
            "invoke": (
                cmd.endpoint_invoke,
                [
                    NAME_REQ,
                    _a("--deployment-name", "-d"),
                    _a("--input", "-i"),
                    _a("--input-type", choices=("uri_folder", "uri_file")),
                    _a("--file", "-f", help="inputs YAML"),
                    _a("--mini-batch-size", type=int),
                    _a("--instance-count", type=int),
                    SET,
                    _a("--output-path"),
                    _a("--job-name"),
                    _a("--experiment-name"),
                    _a(
                        "--dry-run",
                        action="store_true",
                        help="score the first mini-batch here, now, and show the result",
                    ),
                    _a(
                        "--incremental",
                        action="store_true",
                        help="skip input files an earlier --incremental job of the same deployment revision, "
                        "model and settings scored; reuse their rows (batchnb's)",
                    ),
                    _a("--stream", action="store_true", help="follow the job until it ends, printing its events"),
                    _a("--wait", action="store_true", help="return when the job has ended"),
                ],
                "start a batch job (returns at once)",
            ),
            "compare": (
                cmd.endpoint_compare,
                [
                    NAME_REQ,
                    _a("--deployments", nargs=2, required=True, metavar=("A", "B"), help="the two deployments"),
                    _a("--input", "-i", required=True),
                    _a("--input-type", choices=("uri_folder", "uri_file")),
                    _a("--sample", type=int, metavar="N", help="score only the first N items (files, or rows)"),
                    _a("--max-disagreements", type=int, default=50, help="rows of the disagreement table (default 50)"),
                    _a("--timeout", type=float, help="seconds to wait for each job"),
                ],
                "score one input with two deployments and compare their outputs row by row (batchnb's)",
            ),
            "list-jobs": (cmd.endpoint_list_jobs, [NAME_REQ], "list an endpoint's jobs"),
        },
    ),
    "batch-deployment": (
        ("deployment",),
        "deployments of batch endpoints",
        {
            "create": (
                cmd.deployment_create,
                [
                    NAME,
                    _a("--endpoint-name", "-e"),
                    FILE,
                    SET,
                    DESC,
                    _a("--set-default", action="store_true"),
                    _a("--skip-script-validation", action="store_true"),
                    NO_WAIT,
                ],
                "create a deployment from Azure's deployment YAML",
            ),
            "show": (cmd.deployment_show, [NAME_REQ, ENDPOINT], "show a deployment"),
            "list": (cmd.deployment_list, [ENDPOINT], "list an endpoint's deployments"),
            "update": (cmd.deployment_update, [NAME, ENDPOINT, FILE, SET, NO_WAIT], "update a deployment"),
            "delete": (cmd.deployment_delete, [NAME_REQ, ENDPOINT, YES, NO_WAIT], "delete a deployment"),
            "list-jobs": (cmd.deployment_list_jobs, [NAME_REQ, ENDPOINT], "list a deployment's jobs"),
        },
    ),
    "component": (
        (),
        "register and show components (command and pipeline)",
        {
            "create": (
                cmd.component_create,
                [NAME, VERSION, FILE, SET, DESC],
                "register a component version from Azure's component YAML",
            ),
            "show": (cmd.asset_show("components"), [NAME_REQ, VERSION, _a("--label", "-l")], "show a component"),
            "list": (cmd.asset_list("components"), [NAME], "list components (or the versions of one)"),
        },
    ),
    "job": (
        (),
        "batch jobs and pipeline jobs",
        {
            "create": (
                cmd.job_create,
                [
                    _a("--file", "-f", required=True, help="Azure's pipeline job YAML"),
                    NAME,
                    SET,
                    _a("--experiment-name", "-e"),
                    _a("--stream", action="store_true", help="follow the job until it ends, printing its events"),
                    _a("--wait", action="store_true", help="return when the job has ended"),
                ],
                "start a pipeline job (returns at once)",
            ),
            "show": (
                cmd.job_show,
                [
                    NAME_REQ,
                    _a(
                        "--as",
                        dest="as_form",
                        choices=("cli", "inputs-yaml", "papermill", "sdk"),
                        help="write out the invocation that started the job, to run it again (batchnb's)",
                    ),
                ],
                "show a job, its progress and lineage",
            ),
            "list": (
                cmd.job_list,
                [
                    _a("--endpoint-name", "-e"),
                    _a("--deployment-name", "-d"),
                    # Azure's statuses, as written: any other value listed no job without a word.
                    _a("--status", choices=JOB_STATUSES),
                    _a("--max-results", "-r", type=int),
                    _a("--parent-job-name", "-p"),
                ],
                "list jobs",
            ),
            "stream": (cmd.job_stream, [NAME_REQ], "follow a job's progress and logs until it ends"),
            "wait": (cmd.job_wait, [NAME_REQ, _a("--timeout", type=float)], "wait for a job; non-zero if it failed"),
            "cancel": (cmd.job_cancel, [NAME_REQ], "cancel a job; committed outputs are kept"),
            "resume": (
                cmd.job_resume,
                [NAME_REQ],
                "finish an Interrupted or Canceled job (a pipeline keeps its completed steps)",
            ),
            "rerun-failed": (
                cmd.job_rerun_failed,
                [
                    NAME_REQ,
                    _a(
                        "--latest",
                        action="store_true",
                        help="score them on the deployment's current revision (after batch-deployment update)",
                    ),
                ],
                "rerun every failed item of a job, then rebuild its output (of a pipeline: its failed steps)",
            ),
            "failures": (
                cmd.job_failures,
                [NAME_REQ, _a("--download-path", "-p", help="write them as CSV to this file (or folder)")],
                "list a batch job's failed items: file or rows, mini-batch, attempts, error, traceback",
            ),
            "download": (
                cmd.job_download,
                [NAME_REQ, _a("--output-name", default="score"), _a("--download-path", "-p", default=".")],
                "download a job's output to <path>/named-outputs/<name>/",
            ),
        },
    ),
    "workspace": (
        (),
        "the workspace",
        {
            "show": (cmd.workspace_show, [], "show which workspace is used and why"),
            "init": (
                None,
                [_a("path", nargs="?", default=".")],  # type: ignore[dict-item]
                "create a .batchnb workspace in a folder (default: here)",
            ),
            "check": (
                cmd.workspace_check,
                [],
                "check the database (SQLite integrity, schema version, jobs against their folders); "
                "non-zero if anything is wrong",
            ),
            "backup": (
                cmd.workspace_backup,
                [_a("--file", "-f", required=True, help="the backup file to write (must not exist)")],
                "copy the database to a file, consistently, also while jobs run",
            ),
            "gc": (cmd.workspace_gc, [], "remove the environment builds that nothing uses"),
            "restore": (
                cmd.workspace_restore,
                [_a("--file", "-f", required=True, help="a backup written by `batchnb workspace backup`")],
                "put a backup in place of the database (kept aside as batchnb.db.damaged-<time>); "
                "refused while jobs run",
            ),
        },
    ),
    "demo": ((), "register the bundled sample and run a job on it", {}),
}


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = _Parser(prog="batchnb", description="Azure ML batch endpoints, locally. Mirrors `az ml`.")
    _globals(parser, suppress=False)
    groups = parser.add_subparsers(dest="group", metavar="<group>", parser_class=_Parser)
    for group, (aliases, help_text, cmds) in GROUPS.items():
        gp = groups.add_parser(group, aliases=list(aliases), help=help_text)
        gp.set_defaults(group=group)
        if not cmds:
            _globals(gp, suppress=True)
            gp.set_defaults(handler=cmd.demo)
            continue
        sub = gp.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
        for name, (handler, args, cmd_help) in cmds.items():
            cp = sub.add_parser(name, help=cmd_help, description=cmd_help)
            for flags, kwargs in args:
                cp.add_argument(*flags, **kwargs)
            _globals(cp, suppress=True)
            cp.set_defaults(handler=handler, command=name)
    return parser


def _one_line(message: str) -> str:
    """The message with line breaks and other control characters escaped: a user's value (a key,
    a file name) may hold them, and the error must stay one line."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    debug = "--debug" in argv
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if args.group is None:
            parser.print_help()
            return 0
        if handler is None and getattr(args, "command", None) != "init":
            raise UsageError(f"batchnb {args.group}: choose a command (see batchnb {args.group} --help)")
        check_query(args.query)
        from ..client import BatchClient

        if args.group == "workspace" and args.command == "init":
            from pathlib import Path

            client = BatchClient(args.workspace or Path(args.path) / ".batchnb")
            result: Any = cmd.workspace_show(client, args)
        elif args.group == "workspace" and args.command in cmd.WITHOUT_CLIENT:
            assert handler is not None  # checked above
            result = handler(args.workspace, args)
        else:
            client = BatchClient(args.workspace)
            assert handler is not None  # checked above
            result = handler(client, args)
        render(result, args.output, args.query, sys.stdout, kind=args.group)
        failure = cmd.outcome_error(args, result)
        if failure is not None:  # after the result: the error is the last line, and the exit code says it
            raise failure
        return 0
    except BatchnbError as exc:
        if debug:
            traceback.print_exc()
        print(f"ERROR: {_one_line(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug of ours: one line unless --debug
        if debug:
            traceback.print_exc()
        print(
            f"ERROR: internal error: {type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


__all__ = ["build_parser", "main"]
