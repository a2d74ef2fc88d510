"""A job's output location: one job at a time, checked writable at invoke, and never a file the job
did not write replaced. Real jobs (supervisor and workers), real concurrent invocations, and a
folder made immutable with ``chattr +i`` (which refuses even root).

The scoring script logs every file it is given (``CALLS``), then waits until the file ``GATE``
exists, so a test decides when scoring ends and can count every call of ``run()``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from engine_helpers import (
    csv_rows,
    job_count,
    kill_and_reap,
    lines,
    output_file,
    reaping,
    run_together,
    supervisor_pid,
    wait_until,
)
from test_cli import assert_user_error
from test_cli import run as cli

from batchnb.errors import ConflictError, ValidationError

GATED_ECHO = """
import os, time
import pandas as pd
def init():
    pass
def run(mini_batch):
    with open(os.environ["CALLS"], "a") as fh:
        fh.write("".join(os.path.basename(f) + "\\n" for f in mini_batch))
    deadline = time.monotonic() + 120
    while not os.path.exists(os.environ["GATE"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
"""

# Invokes the same job as its twin, at the same moment: each prints "ready", waits for a line on
# stdin, invokes, and prints "accepted <job>" or "refused <message>".
INVOKE = textwrap.dedent(
    """\
    import sys
    from batchnb import BatchClient
    from batchnb.errors import ConflictError

    workspace, data, out = sys.argv[1:4]
    client = BatchClient(workspace)
    client.batch_deployments.get("blue", "ep-test")  # the workspace is open before the start
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        job = client.batch_endpoints.invoke("ep-test", input=data, output_path=out)
        print("accepted", job["name"], flush=True)
    except ConflictError as exc:
        print("refused", exc, flush=True)
    """
)


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


@pytest.fixture
def gate(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "trace"
    folder.mkdir()
    return {"calls": folder / "calls.txt", "gate": folder / "gate"}


@pytest.fixture
def gated(deploy: Callable[..., dict], gate: dict[str, Path]) -> dict:
    """The deployment of GATED_ECHO: one file per mini-batch, one worker."""
    return deploy(
        GATED_ECHO,
        mini_batch_size=1,
        max_concurrency_per_instance=1,
        environment_variables={"CALLS": str(gate["calls"]), "GATE": str(gate["gate"])},
    )


@pytest.fixture
def immutable() -> Iterator[Callable[[Path, bool], None]]:
    """set(path, True) makes a folder immutable (``chattr +i``: no file can be made in it, even by
    root); set(path, False) undoes it. Whatever is still immutable is undone after the test."""
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("needs root and chattr")
    held: set[Path] = set()

    def set_(path: Path, on: bool) -> None:
        result = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"chattr does not work here: {result.stderr.strip()}")
        (held.add if on else held.discard)(path)

    try:
        yield set_
    finally:
        for path in held:
            subprocess.run(["chattr", "-i", str(path)], check=False)


def _calls(gate: dict[str, Path]) -> list[str]:
    return lines(gate["calls"])


def _cli_invoke(client, data: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``batchnb batch-endpoint invoke`` of ep-test on ``data``, writing to ``out``."""
    args = ("batch-endpoint", "invoke", "-n", "ep-test", "--input", str(data), "--output-path", str(out))
    return cli(*args, ws=client.workspace.root)


def _interrupted(client, name: str) -> dict:
    return wait_until(
        lambda: (j := client.jobs.get(name))["status"] in ("Interrupted", "Completed", "Failed") and j,
        timeout=120,
        what=f"job {name} to stop",
    )


def test_two_invocations_at_once_on_one_output_path_start_exactly_one_job(client, gated, csv_inputs, gate, tmp_path):
    gate["gate"].touch()
    data, out = csv_inputs(3), tmp_path / "out"
    script = tmp_path / "invoke.py"
    script.write_text(INVOKE)
    results = run_together([sys.executable, str(script), str(client.workspace.root), str(data), str(out)])
    answers = sorted(result.stdout.strip() for result in results)

    assert [a.split()[0] for a in answers] == ["accepted", "refused"], answers
    name = answers[0].split()[1]
    assert f"held by job {name}" in answers[1]
    assert str(out / "predictions.csv") in answers[1]
    assert job_count(client) == 1  # the refused invocation recorded nothing

    job = client.jobs.wait(name, timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(out / "predictions.csv") == csv_rows(3)
    assert sorted(_calls(gate)) == [f"f{i:03d}.csv" for i in range(3)]  # one job's run() calls only
    # Its supervisor was started by a process that has exited: see that it is gone too.
    pid = supervisor_pid(client, name)
    if pid and psutil.pid_exists(pid):
        _, alive = psutil.wait_procs([psutil.Process(pid)], timeout=15)
        kill_and_reap(alive)


def test_an_invoke_while_a_job_writes_that_output_is_refused_naming_the_job(client, gated, csv_inputs, gate, tmp_path):
    data, out = csv_inputs(3), tmp_path / "out"
    first = client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out))
    wait_until(lambda: _calls(gate), timeout=60, what="the first job to score")

    # The same file, spelled differently, from the CLI: one ERROR line, exit 4, nothing recorded.
    other = tmp_path / "elsewhere" / ".." / "out"
    result = _cli_invoke(client, data, other)
    assert_user_error(result, 4, f"job {first['name']} (Running)", str(out / "predictions.csv"))
    assert job_count(client) == 1

    gate["gate"].touch()
    job = first.wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(out / "predictions.csv") == csv_rows(3)
    # Ended, the job holds nothing; but its file is there, and (as on Azure) no job overwrites it.
    with pytest.raises(ConflictError, match=r"predictions\.csv already exists"):
        client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out))
    assert lines(out / "predictions.csv") == csv_rows(3)


def test_a_summary_only_job_holds_its_output_folder(client, deploy, csv_inputs, gate, tmp_path):
    deploy(
        GATED_ECHO,
        mini_batch_size=1,
        output_action="summary_only",
        environment_variables={"CALLS": str(gate["calls"]), "GATE": str(gate["gate"])},
    )
    out = tmp_path / "custom"
    first = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)), output_path=str(out))
    with pytest.raises(ConflictError, match=f"output {out} is held by job {first['name']}"):
        client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2, name="other")), output_path=str(out))
    gate["gate"].touch()
    assert first.wait(timeout=120)["status"] == "Completed"
    # Ended, it holds the folder no longer: a summary_only job's files are the script's to name.
    second = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(1, name="third")), output_path=str(out))
    assert second.wait(timeout=120)["status"] == "Completed", second["error"]


def test_an_interrupted_job_keeps_its_output_and_resume_writes_it(client, gated, csv_inputs, gate, tmp_path):
    data, out = csv_inputs(3), tmp_path / "out"
    job = client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out))
    name = job["name"]
    wait_until(lambda: _calls(gate), timeout=60, what="the job to score")
    supervisor = psutil.Process(supervisor_pid(client, name))
    kill_and_reap([supervisor, *supervisor.children(recursive=True)])  # the whole job dies at once
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", timeout=30, what="Interrupted")

    with pytest.raises(ConflictError, match=f"held by job {name} \\(Interrupted\\).* resume or cancel {name} first"):
        client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out))
    assert job_count(client) == 1

    gate["gate"].touch()
    client.jobs.resume(name)
    job = client.jobs.wait(name, timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(out / "predictions.csv") == csv_rows(3)


def test_a_canceled_job_frees_its_output_but_never_overwrites_the_next_jobs_file(
    client, gated, csv_inputs, gate, tmp_path
):
    data, out = csv_inputs(3), tmp_path / "out"
    first = client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out))
    wait_until(lambda: _calls(gate), timeout=60, what="the first job to score")
    client.jobs.cancel(first["name"])
    assert first.wait(timeout=60)["status"] == "Canceled"

    gate["gate"].touch()
    second = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2, name="other")), output_path=str(out))
    assert second.wait(timeout=120)["status"] == "Completed", second["error"]
    assert lines(out / "predictions.csv") == csv_rows(2)

    with pytest.raises(ConflictError, match=f"predictions.csv exists and was not written by job {first['name']}"):
        client.jobs.resume(first["name"])
    assert client.jobs.get(first["name"])["status"] == "Canceled"
    assert lines(out / "predictions.csv") == csv_rows(2)


def test_a_file_put_at_the_output_during_the_job_is_never_replaced(client, gated, csv_inputs, gate, tmp_path):
    n, out = 3, tmp_path / "out"
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(n)), output_path=str(out))
    name = job["name"]
    wait_until(lambda: _calls(gate), timeout=60, what="the job to score")
    out.mkdir(exist_ok=True)
    (out / "predictions.csv").write_text("a user's own file\n")

    gate["gate"].touch()
    job = _interrupted(client, name)
    assert job["status"] == "Interrupted"
    assert "\n" not in job["error"] and "Traceback" not in job["error"]
    assert f"the output file {out / 'predictions.csv'} exists and was not written by this job" in job["error"]
    assert f"batchnb job resume -n {name}" in job["error"]
    assert (out / "predictions.csv").read_text() == "a user's own file\n"
    assert job["progress"]["mini_batches"]["done"] == n  # every mini-batch scored and kept

    (out / "predictions.csv").rename(out / "mine.csv")
    client.jobs.resume(name)
    job = client.jobs.wait(name, timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(out / "predictions.csv") == csv_rows(n)
    assert (out / "mine.csv").read_text() == "a user's own file\n"
    assert len(_calls(gate)) == n  # resume only merged: run() was not called again


def test_an_unwritable_output_folder_is_refused_at_invoke(client, gated, csv_inputs, gate, tmp_path, immutable):
    data, out = csv_inputs(2), tmp_path / "out"
    out.mkdir()
    immutable(out, True)

    with pytest.raises(ValidationError, match=f"the output folder {out} is not writable: Operation not permitted"):
        client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(out))
    deeper = out / "new" / "folder"
    with pytest.raises(ValidationError, match=f"{deeper} is not writable \\(it would be made in {out}\\)"):
        client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(deeper))
    result = _cli_invoke(client, data, out)
    assert_user_error(result, 2, f"the output folder {out} is not writable")
    assert job_count(client) == 0
    assert not _calls(gate)

    immutable(out, False)
    gate["gate"].touch()
    job = client.batch_endpoints.invoke("ep-test", input=str(data), output_path=str(deeper)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == csv_rows(2)


def test_an_output_folder_made_unwritable_before_the_merge_leaves_the_job_resumable(
    client, gated, csv_inputs, gate, tmp_path, immutable
):
    n, out = 3, tmp_path / "out"
    out.mkdir()
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(n)), output_path=str(out))
    name = job["name"]
    wait_until(lambda: _calls(gate), timeout=60, what="the job to score")
    immutable(out, True)

    gate["gate"].touch()
    job = _interrupted(client, name)
    assert job["status"] == "Interrupted", job["error"]
    assert "\n" not in job["error"] and "Traceback" not in job["error"]
    assert f"could not write the output into {out}: Operation not permitted" in job["error"]
    assert f"batchnb job resume -n {name}" in job["error"]
    assert job["progress"]["mini_batches"]["done"] == n
    assert os.listdir(out) == []
    shown = cli("job", "show", "-n", name, ws=client.workspace.root)
    assert "Traceback" not in shown.stdout + shown.stderr
    assert "Operation not permitted" in shown.stdout

    # Resume while the folder is still immutable: refused at once, naming it.
    with pytest.raises(ValidationError, match=f"the output folder {out} is not writable"):
        client.jobs.resume(name)

    immutable(out, False)
    client.jobs.resume(name)
    job = client.jobs.wait(name, timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(out / "predictions.csv") == csv_rows(n)
    assert sorted(_calls(gate)) == [f"f{i:03d}.csv" for i in range(n)]  # run() was not called again
