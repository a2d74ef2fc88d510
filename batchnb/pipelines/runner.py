"""The pipeline runner: one process per running pipeline job, as the supervisor is for a batch job.

It claims the pipeline job, then runs its steps (child jobs) as shell commands, each in its own
process group, dependencies first and independent steps side by side (up to
``MAX_PARALLEL_STEPS``). Each step writes its outputs under a temporary name next to their final
place; they are renamed into place only when the command exits 0, so a downstream step, a
download or a resume never sees half an output. Lifecycle of a step::

    NotStarted ──▶ Running ──exit 0──▶ Completed
                          └─exit ≠ 0─▶ Failed ─▶ (continue_on_step_failure? its dependents are
                                                   Canceled, the rest go on : everything stops)

A step whose command cannot even be started (no process: ``Popen`` failed) fails the same way.
When the pipeline has an MLflow tracking store, each step's command also gets its own run, a child
of the pipeline's (see :mod:`batchnb.pipelines.runs`).

The runner stamps a heartbeat on the pipeline and its running steps; if it dies, they read
``Interrupted`` and ``job resume`` starts a new runner that keeps every Completed step, kills
what is left of the old one's step processes, and runs the rest. ``job cancel`` stops the running
steps (SIGTERM, then SIGKILL) and cancels the pipeline. ``rerun-failed`` reruns failed and
canceled steps only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ..engine import lifecycle, state
from ..engine.logs import JobLogs
from ..environments import interpreter_for
from ..errors import BatchnbError
from ..files import atomic_write_bytes
from ..store import Store
from .command import render_command
from .runs import PipelineRuns
from .submit import NOT_STARTED

POLL_S = 0.1
MAX_PARALLEL_STEPS = max(2, os.cpu_count() or 1)
TERM_GRACE_S = 5.0
LOG_TAIL_LINES = 20


def _set_pdeathsig() -> None:
    """In the step's shell: die with the runner (Linux), so a killed runner leaves no orphans."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def kill_group(pid: int | None, started: float | None, grace: float = TERM_GRACE_S) -> None:
    """Stop a step's process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    if not pid or state.supervisor_alive(pid, started) is not True:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and state.supervisor_alive(pid, started) is True:
            time.sleep(0.05)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def partial_path(final: str, child: str) -> Path:
    """Where a step writes an output before it is renamed into ``final``."""
    p = Path(final)
    return p.parent / f".{p.name}.partial-{child}"


class PipelineRunner:
    """Runs one pipeline job from its store record to a final status."""

    def __init__(self, workspace_root: Path, job_name: str) -> None:
        self.store = Store(workspace_root / "batchnb.db")
        self.workspace_root = workspace_root
        self.name = job_name
        self.spec: dict[str, Any] = lifecycle.load_spec(self.store, job_name)
        with self.store.read() as db:
            self.children = {
                r["step"]: json.loads(r["spec"])
                for r in db.execute("SELECT step, spec FROM jobs WHERE parent = ?", (job_name,))
            }
        self.job_dir = Path(self.spec["job_dir"])
        self.logs = JobLogs(self.job_dir)
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self.continue_on_failure = bool(self.spec["settings"].get("continue_on_step_failure"))
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._timed_out: set[str] = set()
        self.started_at: dict[str, float] = {}
        self.runs = PipelineRuns(self.store, job_name, self.spec, self.logs.event)

    # -- store ----------------------------------------------------------------------------------

    def _set_status(self, status: str, error: str | None = None, ended: bool = False) -> None:
        if ended and status in state.TERMINAL:
            self.runs.end(status)  # before the status: whoever sees the job ended sees its run ended
        lifecycle.record_status(self.store, self.logs, self.name, status, error, ended)

    def _set_step(self, step: str, status: str, error: str | None = None, **extra: Any) -> None:
        child = self.children[step]["name"]
        now = time.time()
        sets, params = ["status = ?", "error = ?", "heartbeat_at = ?"], [status, error, now]
        if status == state.RUNNING:
            sets += ["started_at = ?", "ended_at = NULL", "supervisor_pid = ?", "supervisor_started = ?"]
            params += [now, extra["runner_pid"], extra["runner_started"]]
            sets += ["process_pid = ?", "process_started = ?"]
            params += [extra["pid"], extra["pid_started"]]
        elif status == NOT_STARTED:
            sets += ["started_at = NULL", "ended_at = NULL", "process_pid = NULL", "process_started = NULL"]
        else:
            sets += ["ended_at = ?"]
            params.append(now)
            if status in state.TERMINAL:
                self.runs.end_step(step, status)
        with self.store.write() as tx:
            tx.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE name = ?", (*params, child))
        self.logs.event(f"step {step} ({child}) {status}" + (f": {error.splitlines()[0]}" if error else ""))

    def _step_rows(self) -> dict[str, Any]:
        with self.store.read() as db:
            return {
                r["step"]: r
                for r in db.execute(
                    "SELECT step, status, process_pid, process_started FROM jobs WHERE parent = ?", (self.name,)
                )
            }

    # -- lifecycle ------------------------------------------------------------------------------

    def claim(self) -> bool:
        """Take the job if it is Queued; record this process as its runner."""
        me = lifecycle.claim(self.store, self.name, state.RUNNING)
        if me is None:
            return False
        self.me = me
        self.logs.event(f"pipeline runner pid {me.pid} claimed job {self.name}")
        return True

    def run(self) -> str:
        """Run the pipeline to a final status and return it."""
        if not self.claim():
            return "not-claimed"
        lifecycle.start_heartbeat(self.store.path, self.name, self._stop, self.cancel, children_running=True)
        try:
            self._prepare()
            return self._loop()
        except BaseException as exc:
            self._stop_running(state.INTERRUPTED if isinstance(exc, SystemExit | KeyboardInterrupt) else state.FAILED)
            text = traceback.format_exc()
            self.logs.event(f"runner error:\n{text}")
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                self._set_status(
                    state.INTERRUPTED,
                    f"the pipeline runner was stopped; run `batchnb job resume -n {self.name}` to finish the job",
                )
                return state.INTERRUPTED
            self.logs.result(f"Failed: batchnb system error: {exc}\n")
            self._set_status(state.FAILED, f"batchnb system error: {exc}\n{text}", ended=True)
            return state.FAILED
        finally:
            self._stop.set()

    def _prepare(self) -> None:
        """Keep Completed steps; reset the rest to NotStarted (killing a dead runner's leftovers)."""
        for step, row in self._step_rows().items():
            if row["status"] == state.COMPLETED:
                self.logs.event(f"step {step} already Completed: kept")
                continue
            kill_group(row["process_pid"], row["process_started"], grace=1.0)
            if row["status"] != NOT_STARTED:
                self.runs.abandon(step, self.children[step].get("mlflow_run_id"))
            for out in self.children[step]["outputs"].values():
                leftover = partial_path(out["path"], self.children[step]["name"])
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                elif leftover.exists():
                    leftover.unlink()
            if row["status"] != NOT_STARTED:
                self._set_step(step, NOT_STARTED)

    def _loop(self) -> str:
        order: list[str] = self.spec["order"]
        statuses = {step: row["status"] for step, row in self._step_rows().items()}
        first_failure: str | None = None
        while True:
            if self.cancel.is_set():
                self._stop_running(state.CANCELED, "canceled by request")
                for step in order:
                    if statuses[step] == NOT_STARTED:
                        self._set_step(step, state.CANCELED, "not run: the pipeline job was canceled")
                self._write_result(state.CANCELED)
                self._set_status(state.CANCELED, "canceled by request; completed steps' outputs are kept", ended=True)
                return state.CANCELED
            for step, proc in list(self.running.items()):
                code = proc.poll()
                limit = self.children[step].get("timeout")
                if code is None and limit and time.monotonic() - self.started_at[step] > limit:
                    self.logs.event(f"step {step} ran past its limits.timeout of {limit} s: stopping it")
                    self._timed_out.add(step)
                    kill_group(proc.pid, None)
                    code = proc.wait()
                if code is None:
                    continue
                del self.running[step]
                statuses[step] = self._finish_step(step, code)
                if statuses[step] == state.FAILED:
                    first_failure = first_failure or step
                    if self._after_failure(step, statuses):
                        return self._end(statuses, first_failure)
            for step in order:
                if len(self.running) >= MAX_PARALLEL_STEPS:
                    break
                needs = self.children[step]["needs"]
                if statuses[step] == NOT_STARTED and all(statuses[n] == state.COMPLETED for n in needs):
                    statuses[step] = self._launch(step)
                    if statuses[step] == state.FAILED:  # it could not start: a failure like any other
                        first_failure = first_failure or step
                        if self._after_failure(step, statuses):
                            return self._end(statuses, first_failure)
            if not self.running and not any(s == NOT_STARTED for s in statuses.values()):
                return self._end(statuses, first_failure)
            if not self.running and not any(
                statuses[s] == NOT_STARTED and all(statuses[n] == state.COMPLETED for n in self.children[s]["needs"])
                for s in order
            ):
                # Nothing can start (a failed launch left dependents waiting): cancel them.
                for s in order:
                    if statuses[s] == NOT_STARTED:
                        statuses[s] = state.CANCELED
                        self._set_step(s, state.CANCELED, "not run: an upstream step failed")
                return self._end(statuses, first_failure)
            time.sleep(POLL_S)

    def _after_failure(self, step: str, statuses: dict[str, str]) -> bool:
        """``step`` failed (or could not start). Without continue_on_step_failure, stop the running
        steps and cancel the rest: True, the pipeline ends. With it, cancel the steps that need it."""
        if not self.continue_on_failure:
            self._stop_running(state.CANCELED, f"stopped: step {step} failed")
            for other in self.spec["order"]:
                if statuses[other] == NOT_STARTED:
                    self._set_step(other, state.CANCELED, f"not run: step {step} failed")
                if statuses[other] in (NOT_STARTED, state.RUNNING):
                    statuses[other] = state.CANCELED
            return True
        for other in self._dependents(step):
            if statuses[other] == NOT_STARTED:
                statuses[other] = state.CANCELED
                self._set_step(other, state.CANCELED, f"not run: upstream step {step} failed")
        return False

    def _dependents(self, step: str) -> list[str]:
        out: list[str] = []
        frontier = [step]
        while frontier:
            current = frontier.pop()
            for other, child in self.children.items():
                if current in child["needs"] and other not in out:
                    out.append(other)
                    frontier.append(other)
        return out

    def _end(self, statuses: dict[str, str], first_failure: str | None) -> str:
        if first_failure is None:
            self._write_result(state.COMPLETED)
            self._set_status(state.COMPLETED, ended=True)
            return state.COMPLETED
        failed = [s for s in self.spec["order"] if statuses[s] == state.FAILED]
        with self.store.read() as db:
            row = db.execute(
                "SELECT error FROM jobs WHERE name = ?", (self.children[first_failure]["name"],)
            ).fetchone()
        reason = f"step {', '.join(failed)} failed" + (f": {row['error']}" if row and row["error"] else "")
        self._write_result(state.FAILED, reason)
        self._set_status(state.FAILED, reason, ended=True)
        return state.FAILED

    def _write_result(self, status: str, reason: str | None = None) -> None:
        rows = self._step_rows()
        lines = [f"{status}" + (f": {reason}" if reason else "")]
        lines += [f"  {step}: {rows[step]['status']}" for step in self.spec["order"]]
        lines += [f"Output {n}: {o['path']}" for n, o in self.spec["outputs"].items()]
        self.logs.result("\n".join(lines) + "\n")

    # -- steps ----------------------------------------------------------------------------------

    def _launch(self, step: str) -> str:
        child = self.children[step]
        job_dir = Path(child["job_dir"])
        user_logs = job_dir / "logs" / "user_logs"
        user_logs.mkdir(parents=True, exist_ok=True)
        workdir = job_dir / "wd"
        if workdir.exists():
            shutil.rmtree(workdir)
        if child.get("code_dir"):
            shutil.copytree(child["code_dir"], workdir)
        else:
            workdir.mkdir(parents=True)
        temp_outputs = {}
        for name, out in child["outputs"].items():
            tmp = partial_path(out["path"], child["name"])
            if tmp.is_dir():
                shutil.rmtree(tmp)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            if out["type"] != "uri_file":
                tmp.mkdir()
            temp_outputs[name] = {**out, "path": str(tmp)}
        try:
            command = render_command(child["command_template"], child["inputs"], temp_outputs, f"step {step}")
        except BatchnbError as exc:  # checked at submit; a job recorded by an older batchnb may still fail it
            self._set_step(step, state.FAILED, f"could not start the step's command: {exc}")
            return state.FAILED
        try:
            # The component's environment, built if it is not yet: its python comes first on PATH.
            python = interpreter_for(child, self.workspace_root)
        except BatchnbError as exc:
            self._set_step(step, state.FAILED, f"could not build the step's environment: {exc}")
            return state.FAILED
        bin_dir = os.path.dirname(python or sys.executable)
        env = {
            **os.environ,
            # The step's MLflow run, if the pipeline has a tracking store (the step's own variables win).
            **self.runs.step_env(step, child),
            **child.get("environment_variables", {}),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            **({"VIRTUAL_ENV": os.path.dirname(bin_dir)} if python else {}),
            "PYTHONUNBUFFERED": "1",
            "AZUREML_RUN_ID": child["name"],
            "AZUREML_ROOT_RUN_ID": self.name,
            "BATCHNB_JOB": child["name"],
            "BATCHNB_PIPELINE_JOB": self.name,
            **command.env,
        }
        log_path = user_logs / "std_log.txt"
        with open(log_path, "ab") as log:
            log.write(f"$ {command.shown}\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    ["bash", "-c", command.script],
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: cancel stops the whole command
                    preexec_fn=_set_pdeathsig,
                )
            except OSError as exc:
                self._set_step(step, state.FAILED, f"could not start the step's command: {exc}")
                return state.FAILED
        import psutil

        try:
            pid_started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            pid_started = None
        self.running[step] = proc
        self.started_at[step] = time.monotonic()
        self._set_step(
            step,
            state.RUNNING,
            runner_pid=self.me.pid,
            runner_started=self.me.create_time(),
            pid=proc.pid,
            pid_started=pid_started,
        )
        return state.RUNNING

    def _finish_step(self, step: str, code: int) -> str:
        child = self.children[step]
        took = time.monotonic() - self.started_at.pop(step, time.monotonic())
        log_path = Path(child["job_dir"]) / "logs" / "user_logs" / "std_log.txt"
        if code != 0 or step in self._timed_out:
            reason = f"signal {-code}" if code < 0 else f"exit code {code}"
            what = f"the command ended with {reason} after {took:.1f} s"
            if step in self._timed_out:
                what = f"the command ran past its limits.timeout of {child['timeout']} s and was stopped"
            tail = _tail(log_path)
            error = what + (f"; last lines of logs/user_logs/std_log.txt:\n{tail}" if tail else "")
            self._set_step(step, state.FAILED, error)
            return state.FAILED
        try:
            for out in child["outputs"].values():
                tmp, final = partial_path(out["path"], child["name"]), Path(out["path"])
                if not tmp.exists():
                    raise OSError(f"the command did not write its {out['type']} output {final.name}")
                if final.is_dir():
                    # Left by a run whose rename landed just before it was lost: replace it.
                    shutil.rmtree(final)
                elif final.exists():
                    final.unlink()
                os.replace(tmp, final)
        except OSError as exc:
            self._set_step(step, state.FAILED, f"could not place the step's outputs: {exc}")
            return state.FAILED
        atomic_write_bytes(
            Path(child["job_dir"]) / "logs" / "job_result.txt", f"Completed in {took:.1f} s\n".encode(), durable=False
        )
        self._set_step(step, state.COMPLETED)
        return state.COMPLETED

    def _stop_running(self, status: str, why: str | None = None) -> None:
        import psutil

        for step, proc in list(self.running.items()):
            try:
                started = psutil.Process(proc.pid).create_time()
            except psutil.Error:
                started = None
            kill_group(proc.pid, started)
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
            if status != state.INTERRUPTED:
                self._set_step(step, status, why)
            del self.running[step]


def start_runner(store: Store, workspace_root: Path, name: str, job_dir: Path) -> None:
    """Start the runner process of pipeline job ``name`` (detached: it outlives the caller), and
    record it as the job's owner until it claims the job."""
    import psutil

    try:
        proc = lifecycle.start_detached(
            "batchnb.pipelines.runner",
            ["--workspace", str(workspace_root), "--job", name],
            job_dir / "logs" / "sys" / "supervisor.txt",
            job_dir,
        )
    except OSError as exc:
        with store.write() as tx:
            tx.execute(
                "UPDATE jobs SET status = ?, error = ?, ended_at = ? WHERE name = ?",
                (state.FAILED, f"could not start the job's runner: {exc}", time.time(), name),
            )
        raise
    try:
        started: float | None = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        started = None
    with store.write() as tx:
        tx.execute(
            "UPDATE jobs SET supervisor_pid = COALESCE(supervisor_pid, ?), "
            "supervisor_started = COALESCE(supervisor_started, ?) WHERE name = ?",
            (proc.pid, started, name),
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m batchnb.pipelines.runner --workspace W --job J``."""
    return lifecycle.main("batchnb-pipeline-runner", lambda root, job: PipelineRunner(root, job).run(), argv)


if __name__ == "__main__":
    sys.exit(main())
