"""The worker side: what runs inside each pool process.

A worker process loads the scoring script once (``init()``), then scores mini-batches
(``run(mini_batch)``) and writes each accepted result as a part file, atomically. It receives only
small records (paths, indices, settings) and returns a small record; it never touches the store.
Nothing here imports IPython, tornado or ipywidgets.

The environment seen by the script is Azure's: ``AZUREML_MODEL_DIR`` (the model sits in a
sub-folder named after the registered file or folder), ``AZUREML_BI_OUTPUT_PATH``, the deployment's
``environment_variables``, ``--logging_level`` on ``sys.argv``, and an
``azureml_user.parallel_run.EntryScript`` shim; plus batchnb's ``BATCHNB_OUTPUT_FORMAT`` (``text``
or ``parquet``, from the output file name).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout, suppress
from pathlib import Path
from typing import Any

from ..cloud.fs import download, snapshot_datastores, use_workspace
from ..compute.stdio import redirect_stdio
from ..specfile import is_url
from . import faults, output, tabular

RUN_RETURN_MESSAGE = (
    "The run() method in the entry script should return a list or a pandas DataFrame. The length of returned "
    "result is considered as succeeded number of items. For --output_action=append_row, the returned result is "
    "what to write into the result file. The actual type of output is {kind}."
)


class MiniBatchTimeout(BaseException):
    """Raised inside ``run()`` when it exceeds ``retry_settings.timeout``.

    A ``BaseException``, like ``KeyboardInterrupt``, so a scoring script's ``except Exception``
    cannot swallow it and keep running past its timeout."""


class _ProcessState:
    """What one worker process keeps between mini-batches and between jobs.

    A worker serves one deployment revision (see :mod:`batchnb.compute.workers`): the scoring
    script's module is imported once and kept for every later job of that revision; ``init()`` runs
    again for each job, after that job's environment is set.
    """

    def __init__(self) -> None:
        self.script: tuple[str, str, str] | None = None  # (code_dir, scoring_script, model_dir) imported here
        self.module: types.ModuleType | None = None
        self.job: str | None = None  # the job whose init() ran (or failed) here
        self.init_error: str | None = None
        # How this process's init() went for the current job, told once to the supervisor.
        self.init_note: dict[str, Any] | None = None
        # The environment before any job's variables: each job starts from it.
        self.base_env: dict[str, str] | None = None
        self.jobs = 0  # jobs this process has served
        # On a Dask worker: the process's own stderr, kept for Dask's log lines (see _keep_dask_logs_apart).
        self.dask_stderr: Any = None


_AZURE_HTTP_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
_STATE = _ProcessState()


def process_name() -> str:
    """The worker's name in logs: ``process<pid>``."""
    return f"process{os.getpid()}"


def _install_entry_script_shim(context: dict[str, Any]) -> None:
    """Provide ``from azureml_user.parallel_run import EntryScript`` unless the real one is installed
    (ours is replaced for each job: its folders are the job's)."""
    installed = sys.modules.get("azureml_user.parallel_run")
    if installed is not None and not getattr(installed, "_batchnb_shim", False):
        return
    log_dir = Path(context["job_dir"]) / "logs" / "user" / "entry_script_log"
    out_dir = context["output_dir"]

    class EntryScript:
        """Local stand-in for Azure's ``azureml_user.parallel_run.EntryScript``."""

        def __init__(self) -> None:
            self.agent_name = process_name()
            self.log_dir = str(log_dir)
            self.working_dir = os.getcwd()
            self.output_dir = os.environ.get("AZUREML_BI_OUTPUT_PATH", out_dir)
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
            self.logger = logging.getLogger(f"azureml_user.{self.agent_name}")
            if not self.logger.handlers:
                log_dir.mkdir(parents=True, exist_ok=True)
                handler = logging.FileHandler(log_dir / f"{self.agent_name}.log.txt")
                handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
                self.logger.addHandler(handler)

    package = types.ModuleType("azureml_user")
    package.__path__ = []
    module = types.ModuleType("azureml_user.parallel_run")
    module.EntryScript = EntryScript  # type: ignore[attr-defined]
    module._batchnb_shim = True  # type: ignore[attr-defined]
    package.parallel_run = module  # type: ignore[attr-defined]
    sys.modules["azureml_user"] = package
    sys.modules["azureml_user.parallel_run"] = module


def _set_cache_dir(context: dict[str, Any]) -> None:
    """``BATCHNB_CACHE_DIR``: the workspace's cache folder, where the built-in MLflow driver keeps
    loaded models (a job invoked before there was one has none in its context)."""
    if context.get("cache_dir"):
        os.environ["BATCHNB_CACHE_DIR"] = context["cache_dir"]
    else:
        os.environ.pop("BATCHNB_CACHE_DIR", None)


def _set_environment(context: dict[str, Any]) -> None:
    os.environ["AZUREML_MODEL_DIR"] = context["model_dir"] or ""
    os.environ["AZUREML_BI_OUTPUT_PATH"] = context["output_dir"]
    if not is_url(context["output_dir"]):
        # Azure mounts the output folder before run(): a script that writes its own files there
        # (summary_only) expects it to exist, on whichever host this worker runs. One that cannot
        # be made is reported where it is written (by the script, or the merge, which can resume).
        with suppress(OSError):
            Path(context["output_dir"]).mkdir(parents=True, exist_ok=True)
    os.environ["AZUREML_BI_JOB_NAME"] = context["job"]
    _set_cache_dir(context)
    os.environ.update(context["environment_variables"])
    # How append_row writes this job's output (text or parquet): the built-in MLflow driver shapes
    # its result by it, as Azure's generated driver does.
    os.environ["BATCHNB_OUTPUT_FORMAT"] = context.get("part_format") or "text"
    level = context["logging_level"]
    script = str(Path(context["code_dir"]) / context["scoring_script"])
    sys.argv = [script, "--logging_level", level.upper()]


def _load_script(context: dict[str, Any], module_name: str) -> types.ModuleType:
    code_dir = context["code_dir"]
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)  # sibling modules of the scoring script are importable
    script = Path(code_dir) / context["scoring_script"]
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load scoring script {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    for name in ("init", "run"):
        if not callable(getattr(module, name, None)):
            raise AttributeError(f"scoring script {script.name} does not define {name}()")
    return module


def _forget_previous_run() -> None:
    """Let this job's ``init()`` log into this job's MLflow run. MLflow's fluent API keeps the run
    the first ``mlflow.log_*`` call opened (from ``MLFLOW_RUN_ID``) as the process's active run: in
    a warm worker, that is an earlier job's. It is dropped from the stack, never ended: its job's
    supervisor ends it, with that job's status. MLflow's own names, so any failure is ignored: an
    MLflow without them keeps no such state."""
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is None:
        return
    with suppress(Exception):
        for stack in fluent._active_run_stack.get_all_thread_values().values():
            stack.clear()
        fluent._last_active_run_id.set(None)


def _ensure_initialized(context: dict[str, Any]) -> types.ModuleType | None:
    """Run ``init()`` once per job in this process, importing the script the first time. Returns
    None if it failed (the job then fails, as on Azure)."""
    script = (context["code_dir"], context["scoring_script"], context["model_dir"] or "")
    if _STATE.job == context["job"] and _STATE.script == script:
        return _STATE.module if _STATE.init_error is None else None
    _STATE.job, _STATE.init_error = context["job"], None
    if _STATE.script != script:
        # A local agent gives each revision its own workers; a Dask worker serves whatever comes:
        # another script is imported afresh, nothing of the previous module kept.
        _STATE.module, _STATE.script = None, None
    started = time.time()
    _keep_dask_logs_apart()
    redirect_stdio(Path(context["job_dir"]) / "logs" / "user", process_name())
    if _STATE.base_env is None:
        _STATE.base_env = dict(os.environ)
    else:  # nothing of the previous job's environment stays
        os.environ.clear()
        os.environ.update(_STATE.base_env)
    _set_environment(context)
    _forget_previous_run()
    # The job's datastores (and their credentials) are those of the workspace that holds its folder.
    root = Path(context["job_dir"]).parent.parent
    use_workspace(root)
    if "shipped" not in context:  # a shipped job's tasks bring their own datastores
        snapshot_datastores(root)
    _install_entry_script_shim(context)
    logging.basicConfig(stream=sys.stdout, level=context["logging_level"].upper(), force=True)
    # The Azure SDK logs every HTTP request and response at INFO. Here those are batchnb's own reads
    # of the job's inputs (on Azure, mounted storage), not the script's: kept out of the user's log
    # unless init() asks for them.
    logging.getLogger(_AZURE_HTTP_LOGGER).setLevel(logging.WARNING)
    warm = _STATE.module is not None
    try:
        if _STATE.module is None:
            _STATE.module = _load_script(context, Path(context["scoring_script"]).stem)
            _STATE.script = script
            _register_shutdown(_STATE.module)
        _STATE.module.init()
    except BaseException:
        _STATE.init_error = traceback.format_exc()
        print(_STATE.init_error, file=sys.stderr, flush=True)
        _log_error(context, "init()", _STATE.init_error)
        return None
    _STATE.jobs += 1
    _STATE.init_note = {"init": "warm" if warm else "ran", "init_s": round(time.time() - started, 3)}
    return _STATE.module


def _keep_dask_logs_apart() -> None:
    """On a Dask worker, keep Dask's own log lines (a restart's or a shutdown's chatter) on the
    worker's stderr: the job's user logs, where fd 2 is about to point, are for the scoring script."""
    if _STATE.dask_stderr is not None or "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:  # not a Dask worker: a loky worker of the agent
        return
    _STATE.dask_stderr = os.fdopen(os.dup(2), "w", buffering=1)
    for name in ("distributed", "dask"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
                handler.setStream(_STATE.dask_stderr)


def _register_shutdown(module: types.ModuleType) -> None:
    shutdown = getattr(module, "shutdown", None)
    if callable(shutdown):
        # The optional shutdown() (v2 parallel jobs) runs once per worker process, when the pool
        # lets its workers go at the end of the job. A multiprocessing finalizer, not atexit: a
        # worker forked from the zygote ends with os._exit, which skips atexit handlers.
        multiprocessing.util.Finalize(None, _run_shutdown, args=(shutdown,), exitpriority=10)


def _run_shutdown(shutdown: Any) -> None:
    try:
        shutdown()
    except BaseException:  # the user's code; the output is already committed
        traceback.print_exc()
    finally:
        sys.stdout.flush()


@contextmanager
def _time_limit(seconds: float) -> Any:
    """Raise :class:`MiniBatchTimeout` in this thread after ``seconds``.

    In a process's main thread (loky) a SIGALRM timer does it. Elsewhere (a Dask worker thread)
    a timer thread raises the exception asynchronously in this thread; either way only Python code
    is interrupted: a call stuck in C is ended by the supervisor's watchdog (loky) or not at all.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        import ctypes

        target = ctypes.c_ulong(threading.get_ident())
        done = threading.Event()

        def fire() -> None:
            if not done.wait(seconds):
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(MiniBatchTimeout))

        timer = threading.Thread(target=fire, name="batchnb-run-timeout", daemon=True)
        timer.start()
        try:
            yield
        except MiniBatchTimeout:
            raise MiniBatchTimeout(f"run() did not return within the timeout of {seconds:g} s") from None
        finally:
            done.set()
        return

    def expire(signum: int, frame: Any) -> None:
        raise MiniBatchTimeout(f"run() did not return within the timeout of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _mini_batch_input(context: dict[str, Any], items: list[Any]) -> Any:
    if context.get("input_paths") is not None:  # a Dask worker that got copies of the inputs
        from .remote import shipped_input

        return shipped_input(context, items)
    if context["mode"] == "tabular":
        return tabular.read_chunks(items)
    return download(items, Path(context["job_dir"]) / "inputs")


def _normalize_result(result: Any) -> Any:
    """Return ``result`` as a list or DataFrame, or raise TypeError with PRS's message."""
    if isinstance(result, list | tuple | output.EncodedLines) or output.is_dataframe(result):
        return result
    if hasattr(result, "__array__") and hasattr(result, "__len__"):
        return list(result)
    if isinstance(result, types.GeneratorType | map | filter):
        return list(result)
    raise TypeError(RUN_RETURN_MESSAGE.format(kind=type(result).__name__))


def _log_error(context: dict[str, Any], where: str, text: str) -> None:
    """Append a full traceback to ``logs/user/error/<process>.txt``."""
    folder = Path(context["job_dir"]) / "logs" / "user" / "error"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{process_name()}.txt", "a", encoding="utf-8") as fh:
        fh.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {where}\n{text}\n")


def score_minibatch(context: dict[str, Any], idx: int, attempt: int, items: list[Any], n_items: int) -> dict[str, Any]:
    """Score one mini-batch in this worker process and commit its part file.

    Returns a small record: ``status`` is ``ok`` (part committed, or nothing to write), ``retry``
    (the attempt failed), or ``init_failed``; with counts, timing and the error text.
    """
    started = time.time()
    base = {"idx": idx, "attempt": attempt, "worker": process_name(), "pid": os.getpid(), "started_at": started}
    module = _ensure_initialized(context)
    if module is None:
        return {**base, "status": "init_failed", "error": _STATE.init_error, "duration": time.time() - started}
    if _STATE.init_note is not None:  # the first mini-batch of this process in this job
        base.update(_STATE.init_note)
        _STATE.init_note = None
    try:
        mini_batch = _mini_batch_input(context, items)
        with _time_limit(context["timeout"]):
            result = module.run(mini_batch)
            result = _normalize_result(result)
        n_results = len(result)
        last_attempt = attempt >= context["max_attempts"]
        if n_results < n_items and not last_attempt:
            raise ValueError(f"run() returned {n_results} result(s) for {n_items} item(s)")
        rows = 0
        if context["output_action"] == "append_row" and n_results:
            parts = Path(context["job_dir"]) / "parts"
            try:
                lineage = output.RowLineage(items, mini_batch) if context.get("lineage", True) else None
                rows = output.write_part(parts, idx, result, context["part_format"], lineage)
            except OSError as exc:  # batchnb's own file, not the script's failure: never charged to it
                error = faults.system_error(f"write the part file of mini-batch {idx} in {parts}", exc)
                return {**base, "status": faults.SYSTEM_ERROR, "error": error, "duration": time.time() - started}
        succeeded = min(n_results, n_items)
        return {
            **base,
            "status": "ok",
            "succeeded": succeeded,
            "failed": n_items - succeeded,
            "rows": rows,
            "duration": time.time() - started,
            "error": None if succeeded == n_items else f"run() returned {n_results} result(s) for {n_items} item(s)",
        }
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = traceback.format_exc()
        shown = items if len(items) <= 20 else [*items[:20], f"... {len(items) - 20} more"]
        _log_error(context, f"mini-batch {idx} attempt {attempt}\nitems: {shown}", text)
        summary = f"{type(exc).__name__}: {exc}".strip()
        return {
            **base,
            "status": "retry",
            "error": summary,
            "error_type": type(exc).__name__,
            "traceback": text,
            "timeout": isinstance(exc, MiniBatchTimeout),
            "duration": time.time() - started,
        }


def _flush_stdout() -> None:
    for stream in {id(s): s for s in (sys.__stdout__, sys.stdout) if s is not None}.values():
        stream.flush()


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """While the user's code runs in the caller's process, send what it prints to stderr: the
    caller's stdout carries its result (``invoke --dry-run -o tsv``). At the file-descriptor level
    too, for C extensions and subprocesses, when there are real descriptors to redirect."""
    try:
        os.fstat(2)
        saved: int | None = os.dup(1)
    except OSError:  # no real descriptors (e.g. a GUI process): Python's own streams only
        saved = None
    _flush_stdout()
    if saved is not None:
        os.dup2(2, 1)
    try:
        with redirect_stdout(sys.stderr):
            yield
    finally:
        _flush_stdout()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


def dry_run(context: dict[str, Any], items: list[Any], n_items: int) -> dict[str, Any]:
    """Run ``init()`` and ``run()`` on one mini-batch in the calling process; restore the environment.

    Used by ``invoke --dry-run``: no pool, no part files, the result or the traceback at once. What
    the scoring script prints goes to stderr, never into the caller's stdout.
    """
    saved_env, saved_argv, saved_path = dict(os.environ), list(sys.argv), list(sys.path)
    started = time.time()
    module_name = f"_batchnb_dry_run_{os.getpid()}_{int(started * 1000)}"
    record: dict[str, Any] = {"items": items, "n_items": n_items}
    try:
        _set_environment(context)
        _install_entry_script_shim(context)
        stage = "init"
        try:
            with _stdout_to_stderr():
                module = _load_script(context, module_name)
                module.init()
                stage = "run"
                result = _normalize_result(module.run(_mini_batch_input(context, items)))
        except Exception:  # the user's code: show its traceback
            record.update(status="failed", stage=stage, error=traceback.format_exc())
            return record
        record.update(status="ok", n_results=len(result), preview=output.preview(result))
        return record
    finally:
        record["duration"] = time.time() - started
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv[:] = saved_argv
        sys.path[:] = saved_path
        sys.modules.pop(module_name, None)
