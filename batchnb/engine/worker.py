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

from ..specfile import is_url
from . import faults, output

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
    """What one worker process keeps between mini-batches: the loaded script, or why init failed."""

    def __init__(self) -> None:
        self.key: tuple[str, ...] | None = None
        self.module: types.ModuleType | None = None
        self.init_error: str | None = None
        # The deployment (its preload key) whose init() ran in this process before any job, in a
        # warm standby's worker: only a job of that deployment may use this process.
        self.preloaded: str | None = None
        # How long that init() took (in the zygote this worker was forked from).
        self.preload_s = 0.0
        # How this process's init() went for the current job, told once to the supervisor.
        self.init_note: dict[str, Any] | None = None


_STATE = _ProcessState()


def process_name() -> str:
    """The worker's name in logs: ``process<pid>``."""
    return f"process{os.getpid()}"


def _install_entry_script_shim(context: dict[str, Any]) -> None:
    """Provide ``from azureml_user.parallel_run import EntryScript`` unless the real one is installed."""
    if "azureml_user.parallel_run" in sys.modules:
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
    package.parallel_run = module  # type: ignore[attr-defined]
    sys.modules.setdefault("azureml_user", package)
    sys.modules["azureml_user.parallel_run"] = module


def redirect_stdio(logs: Path, name: str) -> None:
    """Send this process's output to ``logs/stdout/<name>.stdout.txt`` and ``logs/stderr/…``, at
    the file-descriptor level, so C extensions and subprocesses write there too."""
    for stream, sub, fd in ((sys.stdout, "stdout", 1), (sys.stderr, "stderr", 2)):
        folder = logs / sub
        folder.mkdir(parents=True, exist_ok=True)
        target = os.open(folder / f"{name}.{sub}.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        stream.flush()
        os.dup2(target, fd)
        os.close(target)


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


def _ensure_initialized(context: dict[str, Any]) -> types.ModuleType | None:
    """Load the script and call ``init()`` once per process (per job). Returns None if init failed.

    A worker forked from a zygote that ran ``init()`` for the deployment of ``context``
    (:func:`preinitialize`) has it already: it is then only given the job's environment and logs.
    """
    key = (context["job"], context["code_dir"], context["scoring_script"], context["model_dir"] or "")
    if _STATE.key == key:
        return _STATE.module
    wanted = context.get("preload_key")
    if _STATE.preloaded is not None and _STATE.preloaded != wanted:
        # A pool whose zygote ran init() for another deployment is replaced before it runs a job, so
        # this is a bug if it happens; refuse rather than let one deployment's init() state serve another.
        _STATE.key, _STATE.module = key, None
        _STATE.init_error = "batchnb: this worker process ran init() for another deployment; refusing this job"
        return None
    started = time.time()
    preloaded = _STATE.module if _STATE.preloaded is not None else None
    _STATE.key, _STATE.module, _STATE.init_error = key, None, None
    redirect_stdio(Path(context["job_dir"]) / "logs" / "user", process_name())
    _set_environment(context)
    _install_entry_script_shim(context)
    logging.basicConfig(stream=sys.stdout, level=context["logging_level"].upper(), force=True)
    if preloaded is not None:
        _STATE.module = preloaded
        _STATE.init_note = {"init": "preloaded", "init_s": round(_STATE.preload_s, 3)}
        _register_shutdown(preloaded)
        return preloaded
    try:
        module = _load_script(context, Path(context["scoring_script"]).stem)
        module.init()
    except BaseException:
        _STATE.init_error = traceback.format_exc()
        print(_STATE.init_error, file=sys.stderr, flush=True)
        _log_error(context, "init()", _STATE.init_error)
        return None
    _STATE.module = module
    _STATE.init_note = {"init": "ran", "init_s": round(time.time() - started, 3)}
    _register_shutdown(module)
    return module


def preinitialize(context: dict[str, Any]) -> dict[str, Any]:
    """Run the deployment's ``init()`` in this process before any job: the zygote a pool's workers
    are forked from (see :mod:`batchnb.compute.zygote`), so that they inherit it.

    Only for batchnb's own scoring scripts (the built-in MLflow driver), whose ``init()`` reads
    nothing of the job: ``context`` has no job, only the deployment (model, code, environment
    variables, logging level) and its ``preload_key``. Output goes to the zygote's log. Returns
    ``{"pid", "status": ok | failed | skipped, "duration"}``; a failed one leaves the process marked
    with the deployment anyway, so its job runs ``init()`` again, where the user sees the error.
    """
    started = time.time()
    if _STATE.preloaded is not None or _STATE.key is not None:
        # Only ahead of any job, once: a worker that served a job already ran init() for it.
        return {"pid": os.getpid(), "status": "skipped", "duration": 0.0}
    _STATE.preloaded = context["preload_key"]
    os.environ["AZUREML_MODEL_DIR"] = context["model_dir"] or ""
    _set_cache_dir(context)
    os.environ.update(context["environment_variables"])
    sys.argv = [str(Path(context["code_dir"]) / context["scoring_script"]), "--logging_level"]
    sys.argv.append(context["logging_level"].upper())
    logging.basicConfig(stream=sys.stdout, level=context["logging_level"].upper(), force=True)
    try:
        module = _load_script(context, Path(context["scoring_script"]).stem)
        module.init()
    except BaseException:
        traceback.print_exc()
        return {"pid": os.getpid(), "status": "failed", "duration": time.time() - started}
    _STATE.module = module
    _STATE.preload_s = time.time() - started
    return {"pid": os.getpid(), "status": "ok", "duration": _STATE.preload_s}


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


class RunningMarker:
    """``running/<pid>-<thread>`` in the job folder: which mini-batch this worker scores, since when.

    The supervisor's watchdog reads it to find the process of a ``run()`` stuck past its timeout.
    One file per worker, rewritten in place with one ``pwrite`` per mini-batch, because creating
    and deleting a file per mini-batch costs more than scoring a tiny one.
    """

    WIDTH = 48  # every record is padded to this, so a shorter one leaves no tail of the last

    def __init__(self, job_dir: str) -> None:
        self.job_dir = job_dir
        folder = Path(job_dir) / "running"
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{os.getpid()}-{threading.get_ident()}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)

    def start(self, idx: int, started: float) -> None:
        """Record that mini-batch ``idx`` started at ``started`` in this process."""
        os.pwrite(self.fd, f"{idx} {os.getpid()} {started:.6f}".ljust(self.WIDTH).encode(), 0)

    def stop(self) -> None:
        """Record that this worker is idle."""
        os.pwrite(self.fd, b" " * self.WIDTH, 0)

    @staticmethod
    def read(job_dir: Path) -> list[tuple[int, int, float]]:
        """Every busy worker's ``(mini-batch, pid, started)``."""
        found = []
        for path in (job_dir / "running").glob("*"):
            try:
                idx, pid, started = path.read_text().split()
                found.append((int(idx), int(pid), float(started)))
            except (OSError, ValueError):  # idle, gone, or caught mid-write: the next look sees it
                continue
        return found


_markers: dict[int, RunningMarker] = {}


def _marker(job_dir: str) -> RunningMarker:
    """This thread's marker for the job (a worker of a kept pool serves several jobs in turn)."""
    marker = _markers.get(threading.get_ident())
    if marker is None or marker.job_dir != job_dir:
        if marker is not None:
            os.close(marker.fd)
        marker = _markers[threading.get_ident()] = RunningMarker(job_dir)
    return marker


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
    if context["mode"] == "tabular":
        return output.read_tabular_chunks(items)
    return [output.localize(item, Path(context["job_dir"]) / "inputs") for item in items]


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
    marker = _marker(context["job_dir"])
    marker.start(idx, started)
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
                lineage = output.RowLineage(items, mini_batch)
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
            "traceback": text,
            "timeout": isinstance(exc, MiniBatchTimeout),
            "duration": time.time() - started,
        }
    finally:
        marker.stop()


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
