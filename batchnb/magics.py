"""``%batch`` and ``%%batch``: the notebook front end, a thin adapter over the CLI's commands.

``%batch`` speaks the CLI's language and returns Python objects (a Job, an Endpoint), not text::

    %batch batch-endpoint invoke -n heart --input {data_dir}
    job = _                      # a live progress display when shown; job.wait() blocks

``%%batch`` makes the cell the authoring surface:

* ``%%batch deploy ENDPOINT/DEPLOYMENT --model m@latest [settings]`` - the cell is the scoring
  script (``init``/``run``); it becomes the deployment's code (the endpoint is created if needed);
* ``%%batch <any CLI command that takes --file>`` - the cell is the YAML that ``--file`` would name
  (an endpoint, a deployment, or the inputs of ``batch-endpoint invoke``); relative paths in it
  resolve against the notebook's folder.

A mistake is one line (IPython's ``UsageError``), never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import uuid
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from .errors import BatchnbError


def _deploy_parser() -> argparse.ArgumentParser:
    from .cli import _Parser

    p = _Parser(prog="%%batch deploy", description="the cell is the scoring script of ENDPOINT/DEPLOYMENT")
    p.add_argument("target", metavar="ENDPOINT/DEPLOYMENT")
    p.add_argument("--model", "-m", required=True, help="azureml:name@latest, name:version, ...")
    p.add_argument("--mini-batch-size", type=str)
    p.add_argument("--max-concurrency-per-instance", "--max-concurrency", type=int)
    p.add_argument("--instance-count", type=int)
    p.add_argument("--error-threshold", type=int)
    p.add_argument("--max-retries", type=int)
    p.add_argument("--timeout", type=int)
    p.add_argument("--output-action", choices=("append_row", "summary_only"))
    p.add_argument("--output-file-name")
    p.add_argument("--mini-batch-mode", "--mode", choices=("file", "tabular"))
    p.add_argument("--env", nargs="+", action="extend", metavar="KEY=VALUE", default=[])
    p.add_argument("--set-default", action="store_true")
    p.add_argument("--description")
    p.add_argument("--workspace", "-w")
    return p


@magics_class
class BatchMagics(Magics):
    """``%batch`` / ``%%batch``, bound to one :class:`BatchClient` per workspace."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell=shell)
        self._clients: dict[str | None, Any] = {}

    def client(self, workspace: str | None = None) -> Any:
        """The client for ``workspace`` (default: the workspace rule, from the kernel's folder)."""
        if workspace not in self._clients:
            from .client import BatchClient

            self._clients[workspace] = BatchClient(workspace)
        return self._clients[workspace]

    @line_cell_magic
    def batch(self, line: str, cell: str | None = None) -> Any:
        """Run a batchnb CLI command and return its result as a Python object.

        Line: ``%batch <group> <command> [flags]``, exactly as on the command line.
        Cell: ``%%batch deploy E/D --model REF [settings]`` (the cell is the scoring script), or
        ``%%batch <command>`` (the cell is the YAML for ``--file``).
        """
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise IPythonUsageError(f"%batch: {exc}") from None
        try:
            if cell is None:
                return self._run(argv)
            if argv[:1] == ["deploy"]:
                return self._deploy(argv[1:], cell)
            return self._run_with_file(argv, cell)
        except BatchnbError as exc:
            raise IPythonUsageError(exc.message) from None

    def _run(self, argv: list[str]) -> Any:
        from .cli import build_parser
        from .cli.render import apply_query, check_query

        if not argv:
            raise IPythonUsageError("%batch: give a command, e.g. %batch batch-endpoint list")
        if argv[0] == "compare":  # %batch compare -n E --deployments A B --input X
            argv = ["batch-endpoint", *argv]
        try:
            args = build_parser().parse_args(argv)
        except SystemExit:  # --help printed the usage
            return None
        handler = getattr(args, "handler", None)
        if handler is None:
            raise IPythonUsageError(f"%batch {args.group}: choose a command (%batch {args.group} --help)")
        if getattr(args, "stream", False):
            args.stream = False  # the returned Job shows live progress instead of printing events
        from .cli import commands as cmd
        from .cli.commands import WITHOUT_CLIENT

        check_query(args.query)  # before the command changes anything
        if handler is cmd.endpoint_compare and not args.query:
            from .widgets.progress import live_frontend_available

            if live_frontend_available():  # the two jobs' progress, then the report
                from .widgets.compare import compare_live

                client = self.client(args.workspace)
                return compare_live(
                    client, args.name, args.deployments, lambda on_job: handler(client, args, on_job=on_job)
                )
        if args.group == "workspace" and getattr(args, "command", None) in WITHOUT_CLIENT:
            result = handler(args.workspace, args)  # they work on a workspace a client refuses
        else:
            result = handler(self.client(args.workspace), args)
        return apply_query(result, args.query) if args.query else result

    def _run_with_file(self, argv: list[str], cell: str) -> Any:
        if any(flag in argv for flag in ("-f", "--file")):
            raise IPythonUsageError("%%batch: the cell is the --file; do not pass -f/--file as well")
        # Written next to the notebook so that relative paths in the YAML resolve from there.
        path = Path.cwd() / f".batchnb-cell-{uuid.uuid4().hex[:8]}.yml"
        path.write_text(cell, encoding="utf-8")
        try:
            return self._run([*argv, "--file", str(path)])
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def _deploy(self, argv: list[str], cell: str) -> Any:
        args = _deploy_parser().parse_args(argv)
        endpoint, sep, deployment = args.target.partition("/")
        if not sep or not deployment:
            raise IPythonUsageError(f"%%batch deploy: {args.target!r}: expected ENDPOINT/DEPLOYMENT")
        from .schemas import check_name

        # Checked before the names become a folder of the workspace.
        check_name("endpoint", endpoint)
        check_name("deployment", deployment)
        client = self.client(args.workspace)
        spec = self._deploy_spec(args, endpoint, deployment, client.workspace.root)
        code = Path(spec["code_configuration"]["code"])
        script = code / "score.py"
        before = script.read_text(encoding="utf-8") if script.is_file() else None
        code.mkdir(parents=True, exist_ok=True)
        self._write_script(script, cell)
        try:
            # The endpoint is created with the deployment, in one transaction: a refused cell leaves none.
            return client.batch_deployments.create_or_update(
                spec, set_default=args.set_default, create_endpoint=True, source="%%batch cell"
            )
        except BatchnbError:
            # Put back the script of the deployment that is still in place (or remove the refused one).
            if before is None:
                with contextlib.suppress(OSError):
                    script.unlink()
                    code.rmdir()
                    code.parent.rmdir()  # the endpoint's folder, if no other deployment has one
            else:
                self._write_script(script, before)
            raise

    @staticmethod
    def _write_script(script: Path, text: str) -> None:
        tmp = script.with_name(f".score.py.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(script)

    @staticmethod
    def _deploy_spec(args: argparse.Namespace, endpoint: str, deployment: str, root: Path) -> dict[str, Any]:
        """The deployment spec that ``%%batch deploy``'s flags describe (the script in its code folder)."""
        code = root / "notebook-code" / endpoint / deployment
        settings: dict[str, Any] = {}
        for key in (
            "mini_batch_size",
            "max_concurrency_per_instance",
            "error_threshold",
            "output_action",
            "output_file_name",
            "mini_batch_mode",
        ):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        retry = {k: v for k, v in (("max_retries", args.max_retries), ("timeout", args.timeout)) if v is not None}
        if retry:
            settings["retry_settings"] = retry
        if args.env:
            settings["environment_variables"] = dict(item.partition("=")[::2] for item in args.env)
        spec: dict[str, Any] = {
            "name": deployment,
            "endpoint_name": endpoint,
            "model": args.model,
            "code_configuration": {"code": str(code), "scoring_script": "score.py"},
            "settings": settings,
        }
        if args.instance_count:
            spec["resources"] = {"instance_count": args.instance_count}
        if args.description:
            spec["description"] = args.description
        return spec


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext batchnb``: register ``%batch`` and ``%%batch``."""
    ipython.register_magics(BatchMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext batchnb``."""
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("batch", None)
