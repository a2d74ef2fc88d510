"""How the engine counts and reports failures: bad return values, exceptions, error thresholds,
timeouts and a failing ``init()``. Real worker processes, real store; assertions on the job's status,
its counters, its error text and its logs."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from engine_helpers import csv_rows, lines, minibatches, output_file, reaping


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    with reaping():
        yield


def _node_records(job) -> list[dict]:
    folder = Path(job["logs_dir"]) / "sys" / "node" / socket.gethostname()
    return [json.loads(line) for f in sorted(folder.glob("*.txt")) for line in lines(f)]


def _user_tracebacks(job) -> str:
    folder = Path(job["logs_dir"]) / "user" / "error"
    return "".join(f.read_text() for f in sorted(folder.glob("process*.txt")))


def test_run_returning_none_fails_every_attempt_and_the_job(client, deploy, csv_inputs):
    deploy(
        """
        def init():
            pass
        def run(mini_batch):
            return None
        """,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        retry_settings={"max_retries": 2, "timeout": 30},
        isolate_failures=False,  # Azure's way: the whole mini-batch fails
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(4))).wait(timeout=120)

    assert job["status"] == "Failed"
    assert job["error"].startswith("No succeeded mini batch item returned from run().")
    assert job["progress"]["mini_batches"]["failed"] == 2
    assert job["progress"]["mini_batches"]["done"] == 0
    assert job["progress"]["items"] == {"total": 4, "succeeded": 0, "failed": 4}
    assert [mb["attempts"] for mb in minibatches(client, job["name"])] == [2, 2]
    for mb in minibatches(client, job["name"]):
        assert "should return a list or a pandas DataFrame" in mb["error"]
        assert "The actual type of output is NoneType." in mb["error"]

    errors = (Path(job["logs_dir"]) / "user" / "error.txt").read_text()
    assert errors.count("should return a list or a pandas DataFrame") == 4  # 2 mini-batches x 2 attempts
    assert "No succeeded mini batch item" in (Path(job["logs_dir"]) / "job_result.txt").read_text()
    assert not output_file(job).exists()


def test_a_short_list_is_retried_then_counted(client, deploy, csv_inputs, tmp_path):
    calls = tmp_path / "calls.txt"
    deploy(
        """
        import os
        def init():
            pass
        def run(mini_batch):
            with open(os.environ["CALLS"], "a") as fh:
                fh.write(os.path.basename(mini_batch[0]) + "\\n")
            return [os.path.basename(f) for f in mini_batch[:-1]]  # always one result short
        """,
        mini_batch_size=3,
        retry_settings={"max_retries": 3, "timeout": 30},
        environment_variables={"CALLS": str(calls)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6))).wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    # Each mini-batch ran max_retries times; the last attempt's results were kept.
    assert sorted(lines(calls)) == ["f000.csv"] * 3 + ["f003.csv"] * 3
    progress = job["progress"]
    assert progress["mini_batches"]["done"] == 2
    assert progress["mini_batches"]["failed"] == 0
    assert progress["items"] == {"total": 6, "succeeded": 4, "failed": 2}  # the gap: one item per mini-batch
    assert progress["rows_written"] == 4
    assert lines(output_file(job)) == ["f000.csv", "f001.csv", "f003.csv", "f004.csv"]
    attempts = sorted((r["mini_batch"], r["attempt"], r["succeeded"], r["failed"]) for r in _node_records(job))
    assert attempts == [(0, 1, 0, 0), (0, 2, 0, 0), (0, 3, 2, 1), (1, 1, 0, 0), (1, 2, 0, 0), (1, 3, 2, 1)]
    errors = (Path(job["logs_dir"]) / "user" / "error.txt").read_text()
    assert "run() returned 2 result(s) for 3 item(s)" in errors


def test_a_dataframe_result_counts_its_rows(client, deploy, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # 4 files with 1, 3, 1 and 2 rows: 7 output rows for 4 items.
    sizes = [1, 3, 1, 2]
    for i, n in enumerate(sizes):
        (folder / f"f{i}.csv").write_text("x\n" + "".join(f"{i}{k}\n" for k in range(n)))
    deploy(
        """
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=2,
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert job["progress"]["items"] == {"total": 4, "succeeded": 4, "failed": 0}
    assert job["progress"]["rows_written"] == 7
    assert lines(output_file(job)) == ["0", "10", "11", "12", "20", "30", "31"]
    assert [(mb["succeeded"], mb["rows"]) for mb in minibatches(client, job["name"])] == [(2, 4), (2, 3)]


CORRUPT = """
import os
import pandas as pd
def init():
    pass
def run(mini_batch):
    frames = []
    for f in mini_batch:
        df = pd.read_csv(f)
        if list(df.columns) != ["x", "y"]:
            raise ValueError(f"corrupt input file {os.path.basename(f)}: columns {list(df.columns)}")
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
"""


def _with_corrupt_file(csv_inputs, n: int, bad: int) -> Path:
    folder = csv_inputs(n)
    (folder / f"f{bad:03d}.csv").write_text("\x00\x01garbage\n")
    return folder


def test_a_corrupt_file_fails_its_mini_batch_only_when_the_threshold_is_off(client, deploy, csv_inputs):
    deploy(
        CORRUPT,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        error_threshold=-1,
        retry_settings={"max_retries": 2, "timeout": 30},
        isolate_failures=False,  # Azure's way: the whole mini-batch fails
    )
    folder = _with_corrupt_file(csv_inputs, 8, bad=5)
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    progress = job["progress"]
    assert progress["mini_batches"]["total"] == 4
    assert progress["mini_batches"]["done"] == 3
    assert progress["mini_batches"]["failed"] == 1
    assert progress["items"] == {"total": 8, "succeeded": 6, "failed": 2}
    by_idx = {mb["idx"]: mb for mb in minibatches(client, job["name"])}
    assert by_idx[2]["status"] == "failed" and by_idx[2]["attempts"] == 2
    assert "corrupt input file f005.csv" in by_idx[2]["error"]
    # Mini-batch 2 (f004, f005) is missing; f004 is lost with it, as on Azure.
    assert lines(output_file(job)) == csv_rows(8, skip=(4, 5))

    errors = (Path(job["logs_dir"]) / "user" / "error.txt").read_text()
    assert "mini-batch 2 attempt 1/2 failed" in errors
    assert "mini-batch 2 attempt 2/2 failed" in errors
    assert "ValueError: corrupt input file f005.csv" in errors
    tracebacks = _user_tracebacks(job)
    assert tracebacks.count("mini-batch 2 attempt") == 2
    assert "Traceback (most recent call last)" in tracebacks
    assert "f005.csv" in tracebacks and "raise ValueError" in tracebacks
    assert (
        "Completed: 3 of 4 mini-batch(es) succeeded, 1 failed" in (Path(job["logs_dir"]) / "job_result.txt").read_text()
    )


def test_a_corrupt_file_fails_the_job_when_the_threshold_is_zero(client, deploy, csv_inputs):
    deploy(CORRUPT, mini_batch_size=2, error_threshold=0, retry_settings={"max_retries": 2, "timeout": 30})
    folder = _with_corrupt_file(csv_inputs, 6, bad=0)
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)

    assert job["status"] == "Failed"
    assert "error threshold was exceeded" in job["error"]
    # Its mini-batch was split: only the corrupt file failed, and the message names it.
    assert "1 item(s) failed (" in job["error"] and "f000.csv), more than error_threshold 0" in job["error"]
    assert job["progress"]["mini_batches"]["failed"] == 1
    assert "error threshold" in (Path(job["logs_dir"]) / "job_result.txt").read_text()
    assert not output_file(job).exists()


def test_the_error_threshold_can_be_set_per_job(client, deploy, csv_inputs):
    deploy(
        CORRUPT,
        mini_batch_size=2,
        error_threshold=-1,
        retry_settings={"max_retries": 1, "timeout": 30},
        isolate_failures=False,
    )
    folder = _with_corrupt_file(csv_inputs, 4, bad=3)
    job = client.batch_endpoints.invoke("ep-test", input=str(folder), set_values=["error_threshold=1"])
    job.wait(timeout=120)
    assert job["settings"]["error_threshold"] == 1
    assert job["status"] == "Failed"
    assert "2 item(s) failed (" in job["error"] and "more than error_threshold 1" in job["error"]


def test_a_hanging_run_times_out_and_the_others_complete(client, deploy, csv_inputs):
    deploy(
        """
        import os, time
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            if any(f.endswith("f002.csv") for f in mini_batch):
                time.sleep(1000)
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        error_threshold=-1,
        retry_settings={"max_retries": 2, "timeout": 2},
    )
    started = time.monotonic()
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(5))).wait(timeout=120)
    elapsed = time.monotonic() - started

    assert job["status"] == "Completed", job["error"]
    assert job["progress"]["mini_batches"]["done"] == 4
    assert job["progress"]["mini_batches"]["failed"] == 1
    assert job["progress"]["items"] == {"total": 5, "succeeded": 4, "failed": 1}
    hung = minibatches(client, job["name"])[2]
    assert hung["status"] == "failed" and hung["attempts"] == 2
    assert "run() did not return within the timeout of 2 s" in hung["error"]
    assert lines(output_file(job)) == csv_rows(5, skip=(2,))
    errors = (Path(job["logs_dir"]) / "user" / "error.txt").read_text()
    assert errors.count("MiniBatchTimeout: run() did not return within the timeout of 2 s") == 2
    assert elapsed < 60  # two 2 s attempts, not a 1000 s sleep


def test_a_run_that_ignores_the_timeout_signal_is_killed(client, deploy, csv_inputs, tmp_path):
    # run() blocks SIGALRM, as code stuck in C would not see it: only the supervisor's watchdog
    # (SIGKILL after timeout + grace) ends it. Two attempts, so the second must be killed too.
    calls = tmp_path / "calls.txt"
    deploy(
        """
        import os, signal, time
        def init():
            pass
        def run(mini_batch):
            with open(os.environ["CALLS"], "a") as fh:
                fh.write(f"{os.path.basename(mini_batch[0])} {os.getpid()}\\n")
            if mini_batch[0].endswith("f001.csv"):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
                time.sleep(1000)
            return [os.path.basename(f) for f in mini_batch]
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        retry_settings={"max_retries": 2, "timeout": 1},
        environment_variables={"CALLS": str(calls)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3))).wait(timeout=40)

    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == ["f000.csv", "f002.csv"]
    stuck = minibatches(client, job["name"])[1]
    assert stuck["status"] == "failed" and stuck["attempts"] == 2
    assert "exceeded the timeout of 1 s and its worker was killed" in stuck["error"]
    assert job["progress"]["mini_batches"]["done"] == 2
    stuck_pids = [line.split()[1] for line in lines(calls) if line.startswith("f001.csv")]
    assert len(stuck_pids) == 2 and len(set(stuck_pids)) == 2  # a fresh worker for the second attempt
    master = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    for pid in stuck_pids:
        assert f"killing worker pid {pid}" in master


def test_init_failure_fails_the_job_quickly_with_its_traceback(client, deploy, csv_inputs, tmp_path):
    calls = tmp_path / "init-calls.txt"
    deploy(
        """
        import os, time
        def load_weights():
            raise RuntimeError("weights file is truncated (code 4711)")
        def init():
            with open(os.environ["CALLS"], "a") as fh:
                fh.write(f"{os.getpid()}\\n")
            time.sleep(0.5)
            load_weights()
        def run(mini_batch):
            return mini_batch
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        retry_settings={"max_retries": 3, "timeout": 30},
        environment_variables={"CALLS": str(calls)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(10))).wait(timeout=120)

    assert job["status"] == "Failed"
    assert "init() of the scoring script failed" in job["error"]
    assert "Traceback (most recent call last)" in job["error"]
    assert "in load_weights" in job["error"]
    assert "RuntimeError: weights file is truncated (code 4711)" in job["error"]
    # No init() retries: at most one call per worker (10 mini-batches x 3 attempts would be 30).
    assert 1 <= len(lines(calls)) <= job["workers"]
    assert job["ended_at"] - job["started_at"] < 15
    assert job["progress"]["mini_batches"]["done"] == 0
    assert job["progress"]["mini_batches"]["running"] == 0
    stderr = "".join(f.read_text() for f in (Path(job["logs_dir"]) / "user" / "stderr").glob("*.txt"))
    assert "RuntimeError: weights file is truncated (code 4711)" in stderr
    assert "init() of the scoring script failed" in (Path(job["logs_dir"]) / "job_result.txt").read_text()


@pytest.mark.parametrize(
    "text",
    ['id,text\n1,"two\nlines"\n2,plain\n', "id,text\n1,a\n2,b\n\n"],
    ids=["quoted-newline", "blank-line"],
)
def test_tabular_csv_rows_are_counted_as_pandas_reads_them(client, deploy, tmp_path, text):
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "a.csv").write_text(text)
    deploy(
        """
        def init():
            pass
        def run(mini_batch):
            return [str(i) for i in mini_batch.id]
        """,
        mini_batch_mode="tabular",
        mini_batch_size=100,
        retry_settings={"max_retries": 1, "timeout": 30},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == ["1", "2"]
    assert job["progress"]["items"] == {"total": 2, "succeeded": 2, "failed": 0}


def test_max_retries_zero_means_a_single_attempt(client, deploy, csv_inputs):
    deploy(CORRUPT, mini_batch_size=2, retry_settings={"max_retries": 0, "timeout": 30}, isolate_failures=False)
    folder = _with_corrupt_file(csv_inputs, 4, bad=1)
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert [(mb["status"], mb["attempts"]) for mb in minibatches(client, job["name"])] == [("failed", 1), ("done", 1)]
    assert lines(output_file(job)) == csv_rows(4, skip=(0, 1))
    errors = (Path(job["logs_dir"]) / "user" / "error.txt").read_text()
    assert "mini-batch 0 attempt 1/1 failed" in errors


def test_a_timeout_cannot_be_swallowed_by_except_exception(client, deploy, csv_inputs):
    deploy(
        """
        import time
        def init():
            pass
        def run(mini_batch):
            try:
                time.sleep(60)
            except Exception:
                time.sleep(60)
            return mini_batch
        """,
        mini_batch_size=1,
        retry_settings={"max_retries": 1, "timeout": 2},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(1))).wait(timeout=60)
    assert job["status"] == "Failed"
    assert (
        minibatches(client, job["name"])[0]["error"]
        == "MiniBatchTimeout: run() did not return within the timeout of 2 s"
    )
    # Stopped by the in-process timer, not by the watchdog killing the worker.
    assert "killing worker" not in (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()


def test_a_failing_init_is_logged_with_its_traceback_in_user_error(client, deploy, csv_inputs):
    deploy(
        """
        def init():
            raise RuntimeError("no weights here")
        def run(mini_batch):
            return mini_batch
        """
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=60)
    assert job["status"] == "Failed"
    traces = _user_tracebacks(job)
    assert "init()" in traces
    assert "RuntimeError: no weights here" in traces


def test_an_empty_input_folder_fails_the_job_with_a_plain_message(client, deploy, tmp_path):
    deploy(
        """
        def init():
            pass
        def run(mini_batch):
            return mini_batch
        """
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "nested").mkdir()
    job = client.batch_endpoints.invoke("ep-test", input=str(empty)).wait(timeout=60)
    assert job["status"] == "Failed"
    assert job["error"].startswith(f"input folder {str(empty)!r} contains no files")
    assert "system error" not in job["error"]
