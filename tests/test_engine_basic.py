"""The engine's happy paths, end to end: real supervisor processes, real loky workers, real SQLite.

Every test invokes a deployment whose scoring script is written inline, waits for the job and
checks what a user would check: the job's status and counters, the exact output, the logs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from engine_helpers import csv_rows, job_count, lines, output_file, reaping, wait_until

from batchnb.errors import ConflictError, NotFoundError

# Reads every CSV of the mini-batch and returns its rows: one output line per input row.
ECHO = """
import pandas as pd
def init():
    pass
def run(mini_batch):
    return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
"""


@pytest.fixture(autouse=True)
def _no_leftover_processes():
    with reaping():
        yield


def test_invoke_returns_at_once_and_the_job_completes(client, deploy, csv_inputs, tmp_path):
    # run() blocks until the test opens a gate: invoke can only return while the job is unfinished.
    gate = tmp_path / "gate"
    deploy(
        """
        import os, time
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            deadline = time.time() + 60
            while not os.path.exists(os.environ["GATE"]) and time.time() < deadline:
                time.sleep(0.02)
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        environment_variables={"GATE": str(gate)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(5)))
    assert job["status"] in ("Queued", "Preparing", "Running")
    assert job["name"].startswith("batchjob-")
    assert client.jobs.get(job["name"])["status"] in ("Queued", "Preparing", "Running")

    gate.touch()
    job.wait(timeout=120)

    assert job["status"] == "Completed", job["error"]
    assert job["error"] is None
    out = output_file(job)
    assert out.name == "predictions.csv"
    assert lines(out) == csv_rows(5)
    progress = job["progress"]
    assert progress["mini_batches"] == {
        "total": 3,
        "done": 3,
        "failed": 0,
        "running": 0,
        "retrying": 0,
        "pending": 0,
    }
    assert progress["items"] == {"total": 5, "succeeded": 5, "failed": 0}
    assert progress["rows_written"] == 5


def test_dataframe_rows_are_space_separated_without_header_in_input_order(client, deploy, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # Written out of order: the output still follows the sorted input.
    for i in (4, 1, 3, 0, 2):
        (folder / f"f{i}.csv").write_text(f"x,y\n{i},{i * 0.5}\n")
    deploy(
        """
        import os
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            rows = []
            for f in mini_batch:
                df = pd.read_csv(f)
                rows.append({"file": os.path.basename(f), "x": int(df.x[0]), "label": f"class {df.x[0] % 2}"})
            return pd.DataFrame(rows)
        """,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    # No header, no index; a field with a space is quoted.
    assert output_file(job).read_text() == (
        'f0.csv 0 "class 0"\nf1.csv 1 "class 1"\nf2.csv 2 "class 0"\nf3.csv 3 "class 1"\nf4.csv 4 "class 0"\n'
    )


def test_list_results_are_written_one_str_per_line(client, deploy, csv_inputs):
    deploy(
        """
        import os
        def init():
            pass
        def run(mini_batch):
            out = []
            for f in mini_batch:
                name = os.path.basename(f)
                out.append((name, len(name)) if name.endswith("1.csv") else f"{name}: ok")
            return out
        """,
        mini_batch_size=2,
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert lines(output_file(job)) == ["f000.csv: ok", "('f001.csv', 8)", "f002.csv: ok"]
    assert job["progress"]["items"] == {"total": 3, "succeeded": 3, "failed": 0}


def test_parquet_output_keeps_the_dataframe_column_names(client, deploy, csv_inputs):
    deploy(
        """
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            df = pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
            df["pred"] = df.x * 10
            return df
        """,
        mini_batch_size=3,
        max_concurrency_per_instance=2,
        output_file_name="scores.parquet",
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(7))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    out = output_file(job)
    assert out.name == "scores.parquet"
    table = pq.read_table(out)
    # Plus the lineage columns, on by default for a Parquet output (one row per file: each row's file is known).
    assert table.column_names == ["x", "y", "pred", "_source_file", "_source_row", "_mini_batch"]
    data = Path(job["inputs"]["input_data"]["path"])
    assert table.to_pydict() == {
        "x": list(range(7)),
        "y": [2 * i for i in range(7)],
        "pred": [10 * i for i in range(7)],
        "_source_file": [str(data / f"f{i:03d}.csv") for i in range(7)],
        "_source_row": [None] * 7,
        "_mini_batch": [0, 0, 0, 1, 1, 1, 2],
    }


def test_output_path_is_honoured(client, deploy, csv_inputs, tmp_path):
    deploy(ECHO, mini_batch_size=2)
    target = tmp_path / "elsewhere" / "out"
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3)), output_path=str(target))
    job.wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert Path(job["outputs"]["score"]["path"]) == target
    assert lines(target / "predictions.csv") == csv_rows(3)
    # Nothing was written to the default location.
    default = client.workspace.default_datastore_root / "azureml" / job["name"]
    assert not default.exists()


def test_a_job_output_downloads_and_a_deleted_one_is_refused_by_name(client, deploy, csv_inputs, tmp_path):
    deploy(ECHO, mini_batch_size=2)
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(5))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    out = Path(job["outputs"]["score"]["path"])
    target = client.jobs.download(job["name"], tmp_path / "dl")
    assert target == (tmp_path / "dl" / "named-outputs" / "score").resolve()
    assert {f.name: f.read_bytes() for f in target.iterdir()} == {f.name: f.read_bytes() for f in out.iterdir()}
    assert len(lines(target / "predictions.csv")) == 5

    shutil.rmtree(out)  # the output removed by hand, or by another tool
    with pytest.raises(NotFoundError, match=f"job {job['name']}'s output score: {out} does not exist"):
        client.jobs.download(job["name"], tmp_path / "again")
    assert not (tmp_path / "again").exists()  # no empty folder left behind


def test_an_existing_output_file_is_refused_before_any_work(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace.txt"
    deploy(
        """
        import os
        def init():
            open(os.environ["TRACE"], "a").write("init\\n")
        def run(mini_batch):
            return mini_batch
        """,
        environment_variables={"TRACE": str(trace)},
    )
    target = tmp_path / "out"
    target.mkdir()
    (target / "predictions.csv").write_text("previous results\n")

    with pytest.raises(ConflictError, match=r"predictions\.csv already exists"):
        client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2)), output_path=str(target))

    assert job_count(client) == 0
    assert client.jobs.list() == []
    assert (target / "predictions.csv").read_text() == "previous results\n"
    assert not trace.exists()  # no worker ever started


def test_mini_batches_are_sorted_absolute_paths_and_the_last_is_short(client, deploy, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    names = [f"f{i:02d}.csv" for i in range(10)]
    for name in random.Random(7).sample(names, len(names)):
        (folder / name).write_text("x\n1\n")
    trace = tmp_path / "batches.jsonl"
    deploy(
        """
        import json, os
        def init():
            pass
        def run(mini_batch):
            with open(os.environ["TRACE"], "a") as fh:
                fh.write(json.dumps(mini_batch) + "\\n")
            return mini_batch
        """,
        mini_batch_size=3,
        max_concurrency_per_instance=2,
        environment_variables={"TRACE": str(trace)},
    )
    monkeypatch.chdir(tmp_path)
    job = client.batch_endpoints.invoke("ep-test", input="data").wait(timeout=120)  # a relative input
    assert job["status"] == "Completed", job["error"]

    received = sorted(json.loads(line) for line in lines(trace))
    paths = [str(folder.resolve() / n) for n in names]
    assert received == [paths[0:3], paths[3:6], paths[6:9], paths[9:10]]
    assert all(os.path.isabs(p) for batch in received for p in batch)
    assert job["progress"]["mini_batches"]["total"] == 4
    assert lines(output_file(job)) == paths


def test_init_runs_once_per_worker_process(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace"
    trace.mkdir()
    deploy(
        """
        import os, time
        def init():
            with open(os.path.join(os.environ["TRACE"], "init.txt"), "a") as fh:
                fh.write(f"{os.getpid()}\\n")
        def run(mini_batch):
            time.sleep(0.05)
            with open(os.path.join(os.environ["TRACE"], "run.txt"), "a") as fh:
                fh.write(f"{os.getpid()}\\n")
            return mini_batch
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        environment_variables={"TRACE": str(trace)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(8))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    init_pids = lines(trace / "init.txt")
    run_pids = lines(trace / "run.txt")
    assert 1 <= len(init_pids) <= job["workers"] == 2
    assert len(set(init_pids)) == len(init_pids)  # never twice in one process
    assert len(run_pids) == 8
    assert set(run_pids) <= set(init_pids)  # every run() came after its process's init()


def test_shutdown_runs_once_per_worker_process_at_the_end(client, deploy, csv_inputs, tmp_path):
    trace = tmp_path / "trace"
    trace.mkdir()
    deploy(
        """
        import os
        def init():
            with open(os.path.join(os.environ["TRACE"], "init.txt"), "a") as fh:
                fh.write(f"{os.getpid()}\\n")
        def run(mini_batch):
            return mini_batch
        def shutdown():
            with open(os.path.join(os.environ["TRACE"], "shutdown.txt"), "a") as fh:
                fh.write(f"{os.getpid()}\\n")
        """,
        mini_batch_size=1,
        max_concurrency_per_instance=2,
        environment_variables={"TRACE": str(trace)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    # Recorded before the job was marked Completed: the pool lets its workers go first.
    assert sorted(lines(trace / "shutdown.txt")) == sorted(lines(trace / "init.txt"))


def test_workers_see_the_azure_environment(client, deploy, csv_inputs, tmp_path):
    seen = tmp_path / "seen.json"
    deploy(
        """
        import json, os, sys
        def init():
            model_dir = os.environ["AZUREML_MODEL_DIR"]
            with open(os.path.join(model_dir, "model", "weights.json")) as fh:
                weights = json.load(fh)
            with open(os.environ["SEEN"], "w") as fh:
                json.dump({
                    "weights": weights,
                    "output_path": os.environ["AZUREML_BI_OUTPUT_PATH"],
                    "greeting": os.environ.get("GREETING"),
                    "argv": sys.argv,
                }, fh)
        def run(mini_batch):
            return mini_batch
        """,
        logging_level="debug",
        environment_variables={"SEEN": str(seen), "GREETING": "hello world"},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(2))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    env = json.loads(seen.read_text())
    assert env["weights"] == {"w": 3}
    assert env["output_path"] == job["outputs"]["score"]["path"]
    assert env["greeting"] == "hello world"
    argv = env["argv"]
    assert argv[0].endswith("score.py")
    assert argv[argv.index("--logging_level") + 1] == "DEBUG"


def test_dry_run_returns_a_preview_and_creates_no_job(client, deploy, csv_inputs):
    deploy(
        """
        import os
        def init():
            pass
        def run(mini_batch):
            return [f"{os.path.basename(f)} scored" for f in mini_batch]
        """,
        mini_batch_size=2,
    )
    result = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(5)), dry_run=True)
    assert result["status"] == "ok"
    assert result["n_results"] == 2
    assert result["preview"] == "f000.csv scored\nf001.csv scored\n"
    assert result["files_in_input"] == 5
    assert job_count(client) == 0


def test_dry_run_of_a_failing_script_returns_its_traceback(client, deploy, csv_inputs):
    deploy(
        """
        def init():
            pass
        def run(mini_batch):
            raise KeyError("no column named 'pred-7731'")
        """
    )
    result = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(3)), dry_run=True)
    assert result["status"] == "failed"
    assert result["stage"] == "run"
    assert "Traceback (most recent call last)" in result["error"]
    assert "KeyError" in result["error"] and "pred-7731" in result["error"]
    assert job_count(client) == 0


def test_two_jobs_on_one_endpoint_at_once(client, deploy, csv_inputs, tmp_path):
    # run() waits for a gate, so both jobs must be running side by side before either can finish.
    gate = tmp_path / "gate"
    deploy(
        """
        import os, time
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            deadline = time.time() + 60
            while not os.path.exists(os.environ["GATE"]) and time.time() < deadline:
                time.sleep(0.02)
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=2,
        environment_variables={"GATE": str(gate)},
    )
    first_in = csv_inputs(6, name="first")
    second_in = tmp_path / "second"
    second_in.mkdir()
    for i in range(4):
        (second_in / f"g{i}.csv").write_text(f"x,y\n{100 + i},{7 * i}\n")

    first = client.batch_endpoints.invoke("ep-test", input=str(first_in))
    second = client.batch_endpoints.invoke("ep-test", input=str(second_in))
    assert first["name"] != second["name"]
    wait_until(
        lambda: all(client.jobs.get(j["name"])["progress"]["mini_batches"]["running"] > 0 for j in (first, second)),
        timeout=60,
        what="both jobs to be scoring at the same time",
    )
    gate.touch()
    first.wait(timeout=120)
    second.wait(timeout=120)

    assert first["status"] == second["status"] == "Completed"
    assert lines(output_file(first)) == csv_rows(6)
    assert lines(output_file(second)) == [f"{100 + i} {7 * i}" for i in range(4)]
    assert output_file(first).parent != output_file(second).parent


def test_parquet_parts_of_different_schemas_merge_into_one_output_in_input_order(client, deploy, csv_inputs):
    # The output is appended to as parts commit; a part whose schema differs from the first one's
    # (here a column that is all null in the first mini-batch, numbers later) must still give the
    # merged output its unified schema, every row once, in input order.
    deploy(
        """
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            df = pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
            df["score"] = None if df.x.iloc[0] == 0 else df.x * 0.5
            return df[["x", "score"]]
        """,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
        output_file_name="scores.parquet",
        lineage_columns=False,
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(6))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    table = pq.read_table(output_file(job))
    assert table.schema.field("score").type == pa.float64()
    assert table.to_pydict() == {"x": list(range(6)), "score": [None, None, 1.0, 1.5, 2.0, 2.5]}


def test_tabular_mode_cuts_parquet_along_row_groups(client, deploy, tmp_path):
    folder = tmp_path / "table"
    folder.mkdir()
    n = 10
    table = pa.table({"id": list(range(n)), "value": [i * 1.5 for i in range(n)]})
    pq.write_table(table, folder / "part.parquet", row_group_size=2)  # 5 row groups of 2 rows
    trace = tmp_path / "sizes.txt"
    deploy(
        """
        import os
        import pandas as pd
        def init():
            pass
        def run(mini_batch):
            with open(os.environ["TRACE"], "a") as fh:
                fh.write(f"{type(mini_batch).__name__} {list(mini_batch.id)}\\n")
            out = mini_batch.copy()
            out["double"] = out.value * 2
            return out
        """,
        mini_batch_mode="tabular",
        mini_batch_size=5,
        max_concurrency_per_instance=2,
        environment_variables={"TRACE": str(trace)},
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(folder)).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    # 5 rows per mini-batch at most, never splitting a row group: 4 + 4 + 2 rows.
    assert sorted(lines(trace)) == ["DataFrame [0, 1, 2, 3]", "DataFrame [4, 5, 6, 7]", "DataFrame [8, 9]"]
    assert job["progress"]["mini_batches"]["total"] == 3
    assert job["progress"]["items"] == {"total": n, "succeeded": n, "failed": 0}
    assert lines(output_file(job)) == [f"{i} {i * 1.5} {i * 3.0}" for i in range(n)]


def test_logs_layout(client, deploy, csv_inputs):
    deploy(
        """
        import os
        import pandas as pd
        def init():
            print("loading model for pid", os.getpid(), flush=True)
        def run(mini_batch):
            for f in mini_batch:
                print("scoring", os.path.basename(f), flush=True)
            return pd.concat([pd.read_csv(f) for f in mini_batch], ignore_index=True)
        """,
        mini_batch_size=2,
        max_concurrency_per_instance=2,
    )
    job = client.batch_endpoints.invoke("ep-test", input=str(csv_inputs(5))).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    logs = Path(job["logs_dir"])

    overview = (logs / "job_progress_overview.txt").read_text()
    assert "Total mini-batches: 3" in overview
    assert "Succeeded: 3" in overview and "Failed: 0" in overview
    assert "Items succeeded: 5" in overview

    result = (logs / "job_result.txt").read_text()
    assert result.startswith("Completed: 3 of 3 mini-batch(es) succeeded, 0 failed; 5 item(s) succeeded, 0 failed.")
    assert str(output_file(job)) in result

    stdout_files = sorted((logs / "user" / "stdout").glob("process*.stdout.txt"))
    assert 1 <= len(stdout_files) <= 2
    printed = "".join(f.read_text() for f in stdout_files)
    for i in range(5):
        assert printed.count(f"scoring f{i:03d}.csv") == 1
    for f in stdout_files:
        pid = f.name.removeprefix("process").removesuffix(".stdout.txt")
        assert f"loading model for pid {pid}" in f.read_text()

    node_files = sorted((logs / "sys" / "node" / socket.gethostname()).glob("process*.txt"))
    assert node_files
    records = [json.loads(line) for f in node_files for line in lines(f)]
    assert sorted(r["mini_batch"] for r in records) == [0, 1, 2]
    assert all(r["status"] == "ok" and r["attempt"] == 1 for r in records)
    assert sum(r["succeeded"] for r in records) == 5
    for f in node_files:
        assert {r["worker"] for r in map(json.loads, lines(f))} == {f.stem}

    master = (logs / "sys" / "master_role.txt").read_text()
    assert "planned 3 mini-batch(es) over 5 file(s)" in master
    assert "status Completed" in master


def test_tabular_dataframe_input_in_dry_run(client, deploy, tmp_path):
    folder = tmp_path / "table"
    folder.mkdir()
    pd.DataFrame({"id": range(6)}).to_parquet(folder / "t.parquet", row_group_size=3)
    deploy(
        """
        def init():
            pass
        def run(mini_batch):
            return [f"row {i}" for i in mini_batch.id]
        """,
        mini_batch_mode="tabular",
        mini_batch_size=3,
    )
    result = client.batch_endpoints.invoke("ep-test", input=str(folder), dry_run=True)
    assert result["status"] == "ok", result.get("error")
    assert result["preview"] == "row 0\nrow 1\nrow 2\n"
    assert job_count(client) == 0
