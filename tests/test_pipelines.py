"""Pipeline components, pipeline jobs and pipeline deployments: Azure's YAML, run for real.

The graph used throughout is Azure's batch-scoring-with-preprocessing shape: prepare (data +
literal inputs) → score (with a registered model) → aggregate, plus a count step that runs
beside score. Steps are real shell commands in their own processes; the runner is a real process,
killed with SIGKILL in the resume test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from engine_helpers import job_count, reaping, wait_until

from batchnb import BatchClient
from batchnb.errors import ConflictError, InvalidStateError, NotFoundError, ValidationError

PREPARE_PY = """
import argparse, csv, json, pathlib
p = argparse.ArgumentParser()
p.add_argument("--data"); p.add_argument("--scale", type=float); p.add_argument("--note"); p.add_argument("--out")
a = p.parse_args()
rows = []
for f in sorted(pathlib.Path(a.data).glob("*.csv")):
    with open(f) as fh:
        rows += [[float(v) * a.scale for v in r.values()] for r in csv.DictReader(fh)]
(pathlib.Path(a.out) / "prepared.json").write_text(json.dumps({"rows": rows, "note": a.note}))
print(f"prepared {len(rows)} rows")
"""

SCORE_PY = """
import json, pathlib, sys
model, data, mode, out = sys.argv[1:]
w = json.loads((pathlib.Path(model) / "weights.json").read_text())["w"]
rows = json.loads((pathlib.Path(data) / "prepared.json").read_text())["rows"]
scores = [w[0] * a + w[1] * b for a, b in rows]
(pathlib.Path(out) / "scores.csv").write_text("score\\n" + "".join(f"{s}\\n" for s in scores))
print("mode", mode)
"""

AGGREGATE_PY = """
import json, pathlib, sys
scores = [float(x) for x in (pathlib.Path(sys.argv[1]) / "scores.csv").read_text().split()[1:]]
(pathlib.Path(sys.argv[2]) / "summary.json").write_text(json.dumps({"n": len(scores), "total": sum(scores)}))
"""

PIPELINE_YML = """
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: heart_scoring
display_name: Batch scoring with preprocessing
inputs:
  input_data:
    type: uri_folder
  scale:
    type: number
    default: 1
  score_mode:
    type: string
    default: append
outputs:
  scores:
    type: uri_folder
    mode: upload
  summary:
    type: uri_folder
jobs:
  prepare_job:
    type: command
    component: azureml:prepare@latest
    inputs:
      data: ${{parent.inputs.input_data}}
      scale: ${{parent.inputs.scale}}
    outputs:
      prepared:
  score_job:
    type: command
    component: components/score/score.yml
    inputs:
      data: ${{parent.jobs.prepare_job.outputs.prepared}}
      model:
        path: azureml:weights@latest
        type: custom_model
      score_mode: ${{parent.inputs.score_mode}}
    outputs:
      scores:
        mode: upload
        path: ${{parent.outputs.scores}}
  aggregate_job:
    type: command
    component:
      code: components/aggregate
      command: python aggregate.py ${{inputs.scores}} ${{outputs.summary}}
      inputs:
        scores:
          type: uri_folder
      outputs:
        summary:
          type: uri_folder
    inputs:
      scores: ${{parent.jobs.score_job.outputs.scores}}
    outputs:
      summary: ${{parent.outputs.summary}}
  count_job:
    type: command
    component:
      command: >-
        python -c "import json,sys; print(len(json.load(open(sys.argv[1] + '/prepared.json'))['rows']))"
        ${{inputs.data}}
      inputs:
        data:
          type: uri_folder
    inputs:
      data: ${{parent.jobs.prepare_job.outputs.prepared}}
"""

PREPARE_YML = """
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: prepare
type: command
inputs:
  data:
    type: uri_folder
  scale:
    type: number
    default: 1
  note:
    type: string
    optional: true
outputs:
  prepared:
    type: uri_folder
code: src
environment: azureml:sklearn-env@latest
command: >-
  python prepare.py
  --data ${{inputs.data}}
  --scale ${{inputs.scale}}
  $[[--note ${{inputs.note}}]]
  --out ${{outputs.prepared}}
"""

SCORE_YML = """
name: score
type: command
inputs:
  model:
    type: custom_model
  data:
    type: uri_folder
  score_mode:
    type: string
outputs:
  scores:
    type: uri_folder
code: src
command: >-
  python score.py ${{inputs.model}} ${{inputs.data}} ${{inputs.score_mode}} ${{outputs.scores}}
"""

PIPELINE_JOB_YML = """
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: heart-score-job
experiment_name: heart-scoring
compute: batch-cluster
component: pipeline.yml
inputs:
  input_data:
    type: uri_folder
  scale: 3
outputs:
  scores:
    mode: upload
"""

WEIGHTS = (0.5, 2.0)
ROWS = [(1, 10), (2, 20), (3, 30), (4, 40)]


def expected_scores(scale: float) -> list[float]:
    return [WEIGHTS[0] * a * scale + WEIGHTS[1] * b * scale for a, b in ROWS]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Azure's example layout: components/{prepare,score,aggregate}, pipeline.yml, data, a model."""
    root = tmp_path / "project"
    for name, yml, script in (
        ("prepare", PREPARE_YML, PREPARE_PY),
        ("score", SCORE_YML, SCORE_PY),
    ):
        (root / "components" / name / "src").mkdir(parents=True)
        (root / "components" / name / f"{name}.yml").write_text(textwrap.dedent(yml))
        (root / "components" / name / "src" / f"{name}.py").write_text(textwrap.dedent(script))
    (root / "components" / "aggregate").mkdir()
    (root / "components" / "aggregate" / "aggregate.py").write_text(textwrap.dedent(AGGREGATE_PY))
    (root / "pipeline.yml").write_text(textwrap.dedent(PIPELINE_YML))
    (root / "pipeline-job.yml").write_text(textwrap.dedent(PIPELINE_JOB_YML))
    data = root / "data" / "unlabeled"
    data.mkdir(parents=True)
    for i, (a, b) in enumerate(ROWS[:2]):
        (data / f"part{i}.csv").write_text(f"a,b\n{a},{b}\n")
    (data / "part2.csv").write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in ROWS[2:]))
    (root / "model").mkdir()
    (root / "model" / "weights.json").write_text(json.dumps({"w": list(WEIGHTS)}))
    return root


@pytest.fixture
def registered(client: BatchClient, project: Path) -> BatchClient:
    """The model, the prepare component and the compute the YAML refers to, registered."""
    client.models.create_or_update({"name": "weights", "type": "custom_model", "path": str(project / "model")})
    client.components.create_or_update(
        yaml.safe_load((project / "components/prepare/prepare.yml").read_text()),
        base_dir=project / "components" / "prepare",
    )
    client.computes.create_or_update({"name": "batch-cluster", "type": "amlcompute"})
    return client


def run_job(client: BatchClient, project: Path, *sets: str, file: str = "pipeline-job.yml", **kw: Any) -> Any:
    data = yaml.safe_load((project / file).read_text())
    with reaping():
        job = client.jobs.create_or_update(data, base_dir=project, set_values=list(sets), **kw)
        return job.wait(timeout=120)


def step_process(client: BatchClient, step_job: str) -> tuple[int | None, int | None]:
    """(the runner's pid, the step command's pid) as recorded for a step job."""
    with client.store.read() as db:
        row = db.execute("SELECT supervisor_pid, process_pid FROM jobs WHERE name = ?", (step_job,)).fetchone()
    return row["supervisor_pid"], row["process_pid"]


def scores_in(folder: str | Path) -> list[float]:
    return [float(x) for x in (Path(folder) / "scores.csv").read_text().split()[1:]]


# --- the CLI, as Azure's deploy-and-run.sh writes it ------------------------------------------------------


def _cli(ws: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCHNB_WORKSPACE": str(ws)}
    return subprocess.run(
        [sys.executable, "-m", "batchnb", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


def test_azure_script_runs_the_pipeline_from_the_cli(tmp_path: Path, project: Path) -> None:
    ws = tmp_path / "ws"

    def ok(*args: str) -> str:
        result = _cli(ws, project, *args)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    ok("model", "create", "--name", "weights", "--type", "custom_model", "--path", "model")
    first = json.loads(ok("component", "create", "-f", "components/prepare/prepare.yml"))
    again = json.loads(ok("component", "create", "-f", "components/prepare/prepare.yml"))
    assert (first["version"], again["version"]) == ("1", "2")
    assert ok("component", "show", "-n", "prepare", "--query", "version", "-o", "tsv") == "2"
    ok(
        "compute",
        "create",
        "-n",
        "batch-cluster",
        "--type",
        "amlcompute",
        "--min-instances",
        "0",
        "--max-instances",
        "5",
    )

    # Azure's pipeline-job.yml leaves the data input to --set: without it, a clear refusal.
    missing = _cli(ws, project, "job", "create", "-f", "pipeline-job.yml")
    assert missing.returncode != 0
    assert "input input_data (uri_folder) is required" in missing.stderr
    assert "--set inputs.input_data.path=" in missing.stderr

    with reaping():
        name = ok(
            "job",
            "create",
            "-f",
            "pipeline-job.yml",
            "--set",
            "inputs.input_data.path=data/unlabeled",
            "--query",
            "name",
            "-o",
            "tsv",
        )
        shown = json.loads(ok("job", "wait", "-n", name))
    assert shown["status"] == "Completed", shown["error"]
    assert shown["experiment_name"] == "heart-scoring"
    assert [s["name"] for s in shown["steps"]] == ["prepare_job", "score_job", "count_job", "aggregate_job"]

    children = json.loads(ok("job", "list", "--parent-job-name", name))
    assert {c["step"]: c["status"] for c in children} == dict.fromkeys(
        ("prepare_job", "score_job", "count_job", "aggregate_job"), "Completed"
    )
    assert all(c["parent_job_name"] == name for c in children)
    # Child jobs are not top-level jobs.
    assert [j["name"] for j in json.loads(ok("job", "list"))] == [name]
    prepare = next(c for c in children if c["step"] == "prepare_job")
    assert "--scale 3.0" in prepare["command"] and "--note" not in prepare["command"]  # optional group dropped
    assert "prepared 4 rows" in Path(prepare["std_log"]).read_text()
    count = next(c for c in children if c["step"] == "count_job")
    assert Path(count["std_log"]).read_text().strip().endswith("4")

    downloaded = json.loads(ok("job", "download", "--name", name, "--output-name", "scores", "--download-path", "dl"))
    assert downloaded["files"] == ["scores.csv"]
    assert scores_in(project / "dl" / "named-outputs" / "scores") == expected_scores(3)
    summary = json.loads((Path(shown["outputs"]["summary"]["path"]) / "summary.json").read_text())
    assert summary == {"n": 4, "total": sum(expected_scores(3))}
    # The step's events are in the pipeline's log, which job stream prints.
    streamed = _cli(ws, project, "job", "stream", "-n", name)
    assert "step score_job" in streamed.stdout + streamed.stderr


# --- pipeline jobs through the Python API -------------------------------------------------------------


def test_independent_steps_run_side_by_side(client: BatchClient, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    step = {
        "component": {
            "command": f"date +%s.%N > {marks}/${{{{inputs.tag}}}}.start; sleep 1.5; "
            f"date +%s.%N > {marks}/${{{{inputs.tag}}}}.end",
            "inputs": {"tag": {"type": "string"}},
        }
    }
    spec = {
        "type": "pipeline",
        "jobs": {"left": {**step, "inputs": {"tag": "left"}}, "right": {**step, "inputs": {"tag": "right"}}},
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=60)
    assert job["status"] == "Completed", job["error"]
    t = {p.name: float(p.read_text()) for p in marks.iterdir()}
    # Each started before the other ended.
    assert t["left.start"] < t["right.end"] and t["right.start"] < t["left.end"]


def test_registered_pipeline_pins_its_components(registered: BatchClient, project: Path) -> None:
    client = registered
    pipeline = client.components.create_or_update(
        yaml.safe_load((project / "pipeline.yml").read_text()), base_dir=project
    )
    assert pipeline["type"] == "pipeline" and pipeline["version"] == "1"
    assert pipeline["jobs"]["prepare_job"]["component"]["version"] == "1"
    assert pipeline["order"] == ["prepare_job", "score_job", "count_job", "aggregate_job"]
    # A new prepare version that would break the graph does not change the registered pipeline.
    broken = yaml.safe_load((project / "components/prepare/prepare.yml").read_text())
    broken["command"] = "exit 7"
    broken["code"] = None
    assert client.components.create_or_update(broken)["version"] == "2"
    job = run_job(
        client,
        project,
        "inputs.input_data.path=data/unlabeled",
        "component=azureml:heart_scoring@latest",
    )
    assert job["status"] == "Completed", job["error"]
    assert scores_in(job["outputs"]["scores"]["path"]) == expected_scores(3)


def test_step_failure_stops_the_pipeline(client: BatchClient, tmp_path: Path) -> None:
    spec = {
        "type": "pipeline",
        "jobs": {
            "bad": {"component": {"command": "echo about to fail; exit 3", "outputs": {"o": {"type": "uri_folder"}}}},
            "slow": {"component": {"command": f"sleep 30; touch {tmp_path}/slow-finished"}},
            "after": {
                "component": {"command": "echo ${{inputs.i}}", "inputs": {"i": {"type": "uri_folder"}}},
                "inputs": {"i": "${{parent.jobs.bad.outputs.o}}"},
            },
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=60)
    assert job["status"] == "Failed"
    assert "step bad failed" in job["error"] and "exit code 3" in job["error"] and "about to fail" in job["error"]
    steps = {s["name"]: s for s in job["steps"]}
    assert steps["bad"]["status"] == "Failed"
    assert steps["slow"]["status"] == "Canceled" and "stopped: step bad failed" in steps["slow"]["error"]
    assert steps["after"]["status"] == "Canceled" and "not run" in steps["after"]["error"]
    assert not (tmp_path / "slow-finished").exists()
    # The failed step wrote no output: nothing half-written is in place.
    bad = client.jobs.get(steps["bad"]["job_name"])
    assert not Path(bad["outputs"]["o"]["path"]).exists()


def test_a_step_that_cannot_start_stops_the_pipeline(client: BatchClient, tmp_path: Path) -> None:
    # A command longer than Linux takes for one argument (128 KiB): bash cannot even be started (E2BIG).
    too_long = "echo " + "x" * 200_000
    spec = {
        "type": "pipeline",
        "jobs": {
            "slow": {
                "component": {"command": f'python -c "import time; time.sleep(30)"; touch {tmp_path}/slow-finished'}
            },
            "unstartable": {"component": {"command": too_long}},
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=60)
    assert job["status"] == "Failed"
    steps = {s["name"]: s for s in job["steps"]}
    assert steps["unstartable"]["status"] == "Failed"
    assert "could not start the step's command" in steps["unstartable"]["error"]
    assert steps["slow"]["status"] == "Canceled" and "stopped: step unstartable failed" in steps["slow"]["error"]
    assert not (tmp_path / "slow-finished").exists()


def test_continue_on_step_failure_and_rerun_failed(client: BatchClient, tmp_path: Path) -> None:
    fixed = tmp_path / "fixed"
    runs = tmp_path / "runs"
    runs.mkdir()
    spec = {
        "type": "pipeline",
        "settings": {"continue_on_step_failure": True},
        "outputs": {"report": {"type": "uri_folder"}},
        "jobs": {
            "flaky": {
                "component": {
                    "command": f"echo x >> {runs}/flaky; test -e {fixed} || exit 2; echo ok > ${{{{outputs.o}}}}/ok",
                    "outputs": {"o": {"type": "uri_folder"}},
                }
            },
            "after_flaky": {
                "component": {
                    "command": f"echo x >> {runs}/after; cp ${{{{inputs.i}}}}/ok ${{{{outputs.o}}}}/ok",
                    "inputs": {"i": {"type": "uri_folder"}},
                    "outputs": {"o": {"type": "uri_folder"}},
                },
                "inputs": {"i": "${{parent.jobs.flaky.outputs.o}}"},
                "outputs": {"o": "${{parent.outputs.report}}"},
            },
            "independent": {"component": {"command": f"echo x >> {runs}/independent"}},
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=60)
        assert job["status"] == "Failed"
        steps = {s["name"]: s["status"] for s in job["steps"]}
        assert steps == {"flaky": "Failed", "after_flaky": "Canceled", "independent": "Completed"}
        with pytest.raises(InvalidStateError, match="report"):
            client.jobs.download(job["name"], tmp_path / "dl", output_name="report")

        fixed.touch()
        client.jobs.rerun_failed(job["name"])
        job = client.jobs.wait(job["name"], timeout=60)
    assert job["status"] == "Completed", job["error"]
    count = {p.name: len(p.read_text().split()) for p in runs.iterdir()}
    assert count == {"flaky": 2, "after": 1, "independent": 1}  # the completed step was not rerun
    target = client.jobs.download(job["name"], tmp_path / "dl", output_name="report")
    assert (target / "ok").read_text() == "ok\n"


def test_resume_after_the_runner_is_killed_keeps_completed_steps(client: BatchClient, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    spec = {
        "type": "pipeline",
        "outputs": {"final": {"type": "uri_folder"}},
        "jobs": {
            "first": {
                "component": {
                    "command": f"echo x >> {runs}/first; echo one > ${{{{outputs.o}}}}/one.txt",
                    "outputs": {"o": {"type": "uri_folder"}},
                }
            },
            "second": {
                "component": {
                    "command": f"echo x >> {runs}/second; echo partial > ${{{{outputs.o}}}}/two.txt; sleep 3; "
                    "cat ${{inputs.i}}/one.txt > ${{outputs.o}}/two.txt",
                    "inputs": {"i": {"type": "uri_folder"}},
                    "outputs": {"o": {"type": "uri_folder"}},
                },
                "inputs": {"i": "${{parent.jobs.first.outputs.o}}"},
                "outputs": {"o": "${{parent.outputs.final}}"},
            },
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec)
        name = job["name"]
        wait_until(lambda: (runs / "second").exists(), 30, "the second step to start")
        second = client.jobs.get(f"{name}-second")
        runner_pid, step_pid = wait_until(
            lambda: all(pids := step_process(client, second["name"])) and pids, 10, "the step's pids"
        )
        runner = psutil.Process(runner_pid)
        runner.kill()
        runner.wait(10)
        shown = wait_until(
            lambda: (j := client.jobs.get(name))["status"] == "Interrupted" and j,
            15,
            "the pipeline to read Interrupted",
        )
        assert "job resume" in shown["error"]
        assert {s["name"]: s["status"] for s in shown["steps"]} == {"first": "Completed", "second": "Interrupted"}
        # The lost step's half-written output never reached its final place.
        final = Path(shown["outputs"]["final"]["path"])
        assert not final.exists()

        client.jobs.resume(name)
        job = client.jobs.wait(name, timeout=60)
        assert not psutil.pid_exists(step_pid) or psutil.Process(step_pid).status() == psutil.STATUS_ZOMBIE
    assert job["status"] == "Completed", job["error"]
    assert (runs / "first").read_text().split() == ["x"]  # not rerun
    assert (runs / "second").read_text().split() == ["x", "x"]
    assert (final / "two.txt").read_text() == "one\n"
    assert sorted(p.name for p in final.parent.iterdir()) == ["final"]  # no partial folders left
    assert second["step"] == "second"


def _two_steps(runs: Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pipeline whose second step, which needs the first's output, takes a few seconds; each step
    counts its runs in ``runs``."""
    first = {"command": f"echo x >> {runs}/first; echo one > ${{{{outputs.o}}}}/one.txt"}
    second = {"command": f"echo x >> {runs}/second; sleep 3; cat ${{{{inputs.i}}}}/one.txt"}
    return {
        "type": "pipeline",
        "settings": settings or {},
        "jobs": {
            "first": {"component": {**first, "outputs": {"o": {"type": "uri_folder"}}}},
            "second": {
                "component": {**second, "inputs": {"i": {"type": "uri_folder"}}},
                "inputs": {"i": "${{parent.jobs.first.outputs.o}}"},
            },
        },
    }


def _kill_the_runner_mid_second_step(client: BatchClient, spec: dict[str, Any], runs: Path) -> str:
    name = client.jobs.create_or_update(spec)["name"]
    wait_until(lambda: (runs / "second").exists(), 30, "the second step to start")
    runner_pid = wait_until(lambda: step_process(client, f"{name}-second")[0], 10, "the runner's pid")
    runner = psutil.Process(runner_pid)
    runner.kill()
    runner.wait(10)
    wait_until(lambda: client.jobs.get(name)["status"] == "Interrupted", 15, "the pipeline to read Interrupted")
    return name


def test_a_pipeline_job_whose_runner_died_is_resumed_by_itself(client: BatchClient, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    with reaping():
        name = _kill_the_runner_mid_second_step(client, _two_steps(runs), runs)
        assert "resumes it" in client.jobs.get(name)["error"]
        # What the Jupyter server extension does as it loads.
        assert client.jobs.recover() == [name]
        job = client.jobs.wait(name, timeout=60)
        assert client.jobs.recover() == []
    assert job["status"] == "Completed", job["error"]
    assert (runs / "first").read_text().split() == ["x"]  # its completed step kept
    assert (runs / "second").read_text().split() == ["x", "x"]
    events = (Path(job["logs_dir"]) / "sys" / "master_role.txt").read_text()
    assert "resumed automatically (automatic resume 1 of 3" in events


def test_a_lost_pipeline_job_past_max_auto_resumes_waits_for_job_resume(client: BatchClient, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    with reaping():
        name = _kill_the_runner_mid_second_step(client, _two_steps(runs, {"max_auto_resumes": 0}), runs)
        # The next pipeline job submitted looks for lost ones, as the next invoke starts a compute's agent.
        other = client.jobs.create_or_update({"type": "pipeline", "jobs": {"only": {"component": {"command": "true"}}}})
        assert client.jobs.wait(other["name"], timeout=60)["status"] == "Completed"
        job = client.jobs.get(name)
        assert job["status"] == "Interrupted"
        assert "not resumed automatically: its runner was lost 1 times (max_auto_resumes 0)" in job["error"]
        assert client.jobs.recover() == []  # said once, then left for `job resume`
        client.jobs.resume(name)
        assert client.jobs.wait(name, timeout=60)["status"] == "Completed"
    assert (runs / "first").read_text().split() == ["x"]


def test_cancel_stops_the_running_step(client: BatchClient, tmp_path: Path) -> None:
    spec = {"type": "pipeline", "jobs": {"long": {"component": {"command": f"touch {tmp_path}/started; sleep 60"}}}}
    with reaping():
        job = client.jobs.create_or_update(spec)
        wait_until(lambda: (tmp_path / "started").exists(), 30, "the step to start")
        pid = wait_until(lambda: step_process(client, job["steps"][0]["job_name"])[1], 10, "the step's pid")
        client.jobs.cancel(job["name"])
        job = client.jobs.wait(job["name"], timeout=30)
        with pytest.raises(InvalidStateError, match="pipeline job"):
            client.jobs.cancel(job["steps"][0]["job_name"])
    assert job["status"] == "Canceled"
    assert job["steps"][0]["status"] == "Canceled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# --- pipeline deployments ---------------------------------------------------------------------------------


def test_pipeline_deployment_invoked_with_an_inputs_file(registered: BatchClient, project: Path) -> None:
    client = registered
    client.batch_endpoints.create_or_update({"name": "heart-pipes"})
    dep = client.batch_deployments.create_or_update(
        {
            "name": "prepros",
            "endpoint_name": "heart-pipes",
            "type": "pipeline",
            "component": "pipeline.yml",
            "settings": {"default_compute": "batch-cluster", "continue_on_step_failure": False},
        },
        base_dir=project,
    )
    assert dep["type"] == "pipeline" and dep["resolved"]["component_ref"] == "heart_scoring"
    inputs_yml = {
        "inputs": {
            "input_data": {"type": "uri_folder", "path": "data/unlabeled"},
            "scale": {"type": "number", "default": 10},
            "score_mode": {"type": "string", "default": "replace"},
        },
        "outputs": {"scores": {"type": "uri_folder", "mode": "upload", "path": "out/scores"}},
    }
    plan = client.batch_endpoints.invoke(
        "heart-pipes", inputs=inputs_yml["inputs"], outputs=inputs_yml["outputs"], base_dir=project, dry_run=True
    )
    assert plan["dry_run"] and plan["steps"][0]["name"] == "prepare_job"
    assert "--scale 10.0" in plan["steps"][0]["command"]
    assert job_count(client) == 0  # a dry run records nothing
    for remote in ("s3://bucket/unlabeled", "nope://bucket/unlabeled"):  # refused as remote, whatever is installed
        with pytest.raises(ValidationError, match="is remote; pipeline steps read local paths"):
            client.batch_endpoints.invoke("heart-pipes", inputs={"input_data": remote}, base_dir=project, dry_run=True)

    with reaping():
        job = client.batch_endpoints.invoke(
            "heart-pipes", inputs=inputs_yml["inputs"], outputs=inputs_yml["outputs"], base_dir=project
        ).wait(timeout=120)
    assert job["status"] == "Completed", job["error"]
    assert (job["endpoint_name"], job["deployment_name"], job["experiment_name"]) == (
        "heart-pipes",
        "prepros",
        "heart-pipes",
    )
    assert scores_in(project / "out" / "scores") == expected_scores(10)
    score_log = Path(client.jobs.get(f"{job['name']}-score_job")["std_log"]).read_text()
    assert "mode replace" in score_log
    assert [j["name"] for j in client.batch_endpoints.list_jobs("heart-pipes")] == [job["name"]]

    # Per-job settings of model deployments are refused, naming the flag.
    with pytest.raises(ValidationError, match="--mini-batch-size applies to model deployments"):
        client.batch_endpoints.invoke("heart-pipes", inputs=inputs_yml["inputs"], base_dir=project, mini_batch_size=3)
    with pytest.raises(ValidationError, match="--incremental applies to model deployments"):
        client.batch_endpoints.invoke("heart-pipes", inputs=inputs_yml["inputs"], base_dir=project, incremental=True)
    assert [j["name"] for j in client.batch_endpoints.list_jobs("heart-pipes")] == [job["name"]]  # nothing recorded
    with pytest.raises(ValidationError, match=r"inputs\.scale: 'ten' is not a valid number"):
        client.batch_endpoints.invoke(
            "heart-pipes", inputs={**inputs_yml["inputs"], "scale": "ten"}, base_dir=project, dry_run=True
        )
    # The same output path again: refused, nothing overwritten.
    with pytest.raises(ConflictError, match="already exists"):
        client.batch_endpoints.invoke(
            "heart-pipes", inputs=inputs_yml["inputs"], outputs=inputs_yml["outputs"], base_dir=project
        )


def test_deployment_from_a_finished_pipeline_job(registered: BatchClient, project: Path) -> None:
    client = registered
    source_job = run_job(client, project, "inputs.input_data.path=data/unlabeled")
    assert source_job["status"] == "Completed"
    client.batch_endpoints.create_or_update({"name": "heart-pipes"})
    with pytest.raises(NotFoundError, match="job nope does not exist"):
        client.batch_deployments.create_or_update(
            {"name": "fromjob", "endpoint_name": "heart-pipes", "type": "pipeline", "job_definition": "azureml:nope"}
        )
    deployment_yml = {
        "name": "fromjob",
        "endpoint_name": "heart-pipes",
        "type": "pipeline",
        "job_definition": "azureml:job_name_placeholder",
        "settings": {"continue_on_step_failure": False, "default_compute": "batch-cluster"},
    }
    client.batch_deployments.create_or_update(
        {**deployment_yml, "job_definition": f"azureml:{source_job['name']}"}, set_default=True
    )
    with reaping():
        # No inputs at all: the job's own values are the defaults (scale 3, its data).
        same = client.batch_endpoints.invoke("heart-pipes").wait(timeout=120)
        other = client.batch_endpoints.invoke("heart-pipes", set_values=["inputs.scale=5"]).wait(timeout=120)
    assert same["status"] == "Completed" and other["status"] == "Completed"
    assert scores_in(same["outputs"]["scores"]["path"]) == expected_scores(3)
    assert scores_in(other["outputs"]["scores"]["path"]) == expected_scores(5)


def test_hello_batch_pipeline_deployment_with_no_inputs(client: BatchClient, tmp_path: Path) -> None:
    code = tmp_path / "hello-component" / "src"
    code.mkdir(parents=True)
    (code / "hello.py").write_text(f"open({str(tmp_path / 'said')!r}, 'w').write('hello batch')\nprint('hello')\n")
    (tmp_path / "hello-component" / "hello.yml").write_text(
        textwrap.dedent(
            """
            $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
            name: hello_batch
            display_name: Hello Batch component
            version: 1
            type: pipeline
            jobs:
              main_job:
                type: command
                component:
                  code: src
                  environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest
                  command: >-
                    python hello.py
            """
        )
    )
    client.batch_endpoints.create_or_update({"name": "hello-batch"})
    client.batch_deployments.create_or_update(
        {"name": "hello", "type": "pipeline", "component": "hello-component/hello.yml"},
        endpoint_name="hello-batch",
        base_dir=tmp_path,
    )
    with reaping():
        job = client.batch_endpoints.invoke("hello-batch").wait(timeout=60)
    assert job["status"] == "Completed", job["error"]
    assert (tmp_path / "said").read_text() == "hello batch"


# --- mistakes are refused before anything runs, naming what is wrong --------------------------------------


def _pipeline(**jobs: Any) -> dict[str, Any]:
    return {"type": "pipeline", "inputs": {"x": 1}, "jobs": jobs}


ECHO = {"command": "echo ${{inputs.v}}", "inputs": {"v": {"type": "integer"}}, "outputs": {"o": {"type": "uri_folder"}}}


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        (_pipeline(a={"component": ECHO, "inputs": {"w": 1}}), "jobs.a.inputs.w: the component has no input w"),
        (_pipeline(a={"component": ECHO}), "input v (integer) is required by the component but not bound"),
        (_pipeline(a={"component": ECHO, "inputs": {"v": "${{parent.inputs.y}}"}}), "names no input of the pipeline"),
        (_pipeline(a={"component": ECHO, "inputs": {"v": "many"}}), "'many' is not a valid integer"),
        (
            _pipeline(a={"component": {**ECHO, "command": "echo ${{inputs.nope}}"}, "inputs": {"v": 1}}),
            "command uses ${{inputs.nope}}, but the component's inputs are: v",
        ),
        (
            _pipeline(
                a={"component": ECHO, "inputs": {"v": "${{parent.jobs.b.outputs.o}}"}},
                b={"component": ECHO, "inputs": {"v": "${{parent.jobs.a.outputs.o}}"}},
            ),
            "depend on each other in a cycle",
        ),
        (_pipeline(a={"component": ECHO, "inputs": {"v": "${{parent.jobs.zz.outputs.o}}"}}), "step zz does not exist"),
        (
            _pipeline(**{"bad-name": {"component": ECHO, "inputs": {"v": 1}}}),
            "step name 'bad-name' must be letters, digits and underscores",
        ),
        (_pipeline(a={"component": "missing.yml"}), "component file 'missing.yml' does not exist"),
        (_pipeline(a={"component": "azureml:ghost@latest"}), "component ghost is not registered"),
        (
            _pipeline(
                a={
                    "component": {
                        "command": "echo ${{inputs.m}}",
                        "inputs": {"m": {"type": "string", "optional": True}},
                    }
                }
            ),
            "input m is optional, so the command must use it inside $[[ ... ]]",
        ),
        ({"type": "pipeline"}, "needs either 'component:'"),
        (
            _pipeline(a={"component": {"command": "true", "inputs": {"d": {"type": "mltable"}}}}),
            "mltable is not supported",
        ),
    ],
)
def test_mistakes_are_refused_by_name(client: BatchClient, spec: dict[str, Any], needle: str) -> None:
    with pytest.raises((ValidationError, NotFoundError)) as info:
        client.jobs.create_or_update(spec, source="bad.yml")
    assert needle in str(info.value)
    assert job_count(client) == 0


def test_existing_output_is_never_overwritten(client: BatchClient, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    spec = {
        "type": "pipeline",
        "outputs": {"out": {"type": "uri_folder", "path": str(taken)}},
        "jobs": {
            "a": {
                "component": {"command": "true", "outputs": {"o": {"type": "uri_folder"}}},
                "outputs": {"o": "${{parent.outputs.out}}"},
            }
        },
    }
    with pytest.raises(ConflictError, match=r"outputs\.out: .* already exists and is not empty"):
        client.jobs.create_or_update(spec)
    assert (taken / "keep.txt").read_text() == "mine" and job_count(client) == 0


def test_steps_cannot_run_on_an_ssh_compute(client: BatchClient) -> None:
    client.computes.create_or_update({"name": "cluster", "type": "ssh", "hosts": ["127.0.0.2"]})
    spec = {
        "type": "pipeline",
        "settings": {"default_compute": "cluster"},
        "jobs": {"a": {"component": {"command": "true"}}},
    }
    with pytest.raises(ValidationError, match="compute cluster is ssh"):
        client.jobs.create_or_update(spec)


@pytest.mark.parametrize(
    "mistake",
    [
        {},  # input n is required but not bound
        {"inputs": {"n": 1}, "outputs": {"o": "${{parent.outputs.nope}}"}},
    ],
)
def test_a_refused_pipeline_copies_no_code(client: BatchClient, tmp_path: Path, mistake: dict[str, Any]) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "run.py").write_text("print(1)\n")
    component = {
        "code": "src",
        "command": "python run.py ${{inputs.n}} ${{outputs.o}}",
        "inputs": {"n": {"type": "integer"}},
        "outputs": {"o": {"type": "uri_folder"}},
    }
    spec = {"type": "pipeline", "jobs": {"a": {"component": component, **mistake}}}
    with pytest.raises(ValidationError):
        client.jobs.create_or_update(spec, base_dir=tmp_path)
    with pytest.raises(ValidationError):
        client.components.create_or_update({**spec, "name": "refused"}, base_dir=tmp_path)
    client.batch_endpoints.create_or_update({"name": "pipes"})
    with pytest.raises(ValidationError):
        client.batch_deployments.create_or_update(
            {"name": "refused", "type": "pipeline", "component": spec}, endpoint_name="pipes", base_dir=tmp_path
        )
    assert list(client.workspace.code_dir.iterdir()) == []
    assert job_count(client) == 0


def test_a_pipeline_job_named_as_another_copies_no_code(client: BatchClient, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "run.py").write_text("print(1)\n")
    with reaping():
        first = {"type": "pipeline", "jobs": {"a": {"component": {"command": "true"}}}}
        client.jobs.create_or_update(first, name="taken").wait(timeout=60)
    spec = {"type": "pipeline", "jobs": {"a": {"component": {"code": "src", "command": "python run.py"}}}}
    with pytest.raises(ConflictError, match="a job named taken already exists"):
        client.jobs.create_or_update(spec, base_dir=tmp_path, name="taken")
    assert list(client.workspace.code_dir.iterdir()) == []


def test_a_taken_component_version_is_refused_before_its_code_is_copied(client: BatchClient, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "run.py").write_text("print(1)\n")
    component = {"name": "echo", "version": "1", "type": "command", "command": "python run.py", "code": str(code)}
    client.components.create_or_update(component)
    (code / "run.py").write_text("print(2)\n")
    with pytest.raises(ConflictError, match="component echo version 1 already exists"):
        client.components.create_or_update(component)
    assert len(list(client.workspace.code_dir.iterdir())) == 1  # the first version's code only


def test_a_pipeline_deployment_on_an_unknown_compute_copies_no_code(client: BatchClient, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "run.py").write_text("print(1)\n")
    client.batch_endpoints.create_or_update({"name": "pipes"})
    deployment = {
        "name": "nowhere",
        "type": "pipeline",
        "component": {"type": "pipeline", "jobs": {"a": {"component": {"code": "src", "command": "python run.py"}}}},
        "settings": {"default_compute": "azureml:nope"},
    }
    with pytest.raises(NotFoundError, match=r"settings\.default_compute: compute nope does not exist"):
        client.batch_deployments.create_or_update(deployment, endpoint_name="pipes", base_dir=tmp_path)
    assert list(client.workspace.code_dir.iterdir()) == []


def test_canceling_an_interrupted_pipeline_settles_its_steps(client: BatchClient, tmp_path: Path) -> None:
    spec = {
        "type": "pipeline",
        "jobs": {
            "first": {
                "component": {
                    "command": f"touch {tmp_path}/started; sleep 60",
                    "outputs": {"o": {"type": "uri_folder"}},
                }
            },
            "later": {
                "component": {"command": "true", "inputs": {"i": {"type": "uri_folder"}}},
                "inputs": {"i": "${{parent.jobs.first.outputs.o}}"},
            },
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec)
        wait_until(lambda: (tmp_path / "started").exists(), 30, "the step to start")
        runner_pid, _ = wait_until(lambda: all(p := step_process(client, f"{job['name']}-first")) and p, 10, "pids")
        psutil.Process(runner_pid).kill()
        wait_until(lambda: client.jobs.get(job["name"])["status"] == "Interrupted", 15, "Interrupted")
        job = client.jobs.cancel(job["name"])
    assert job["status"] == "Canceled"
    assert {s["name"]: s["status"] for s in job["steps"]} == {"first": "Canceled", "later": "Canceled"}
    assert all("not run: the pipeline job ended Canceled" in s["error"] for s in job["steps"])


def test_an_interrupted_step_says_to_resume_its_pipeline_job(client: BatchClient, tmp_path: Path) -> None:
    spec = {"type": "pipeline", "jobs": {"long": {"component": {"command": f"touch {tmp_path}/started; sleep 60"}}}}
    with reaping():
        job = client.jobs.create_or_update(spec)
        step = f"{job['name']}-long"
        wait_until(lambda: (tmp_path / "started").exists(), 30, "the step to start")
        runner_pid, _ = wait_until(lambda: all(p := step_process(client, step)) and p, 10, "pids")
        psutil.Process(runner_pid).kill()
        shown = wait_until(lambda: (s := client.jobs.get(step))["status"] == "Interrupted" and s, 15, "Interrupted")
        # The step itself cannot be resumed: its message names the pipeline job.
        assert f"`batchnb job resume -n {job['name']}`" in shown["error"], shown["error"]
        with pytest.raises(InvalidStateError, match="resume the pipeline job instead"):
            client.jobs.resume(step)
        client.jobs.cancel(job["name"])


def test_a_step_past_its_timeout_is_stopped_and_fails(client: BatchClient, tmp_path: Path) -> None:
    spec = {
        "type": "pipeline",
        "jobs": {
            "stuck": {
                "limits": {"timeout": 2},
                "component": {"command": f"echo waiting; sleep 60; touch {tmp_path}/finished"},
            }
        },
    }
    with reaping():
        job = client.jobs.create_or_update(spec).wait(timeout=60)
    assert job["status"] == "Failed"
    error = job["steps"][0]["error"]
    assert "ran past its limits.timeout of 2 s and was stopped" in error and "waiting" in error
    assert not (tmp_path / "finished").exists()
    with pytest.raises(ValidationError, match=r"jobs\.stuck\.limits\.timeout"):
        client.jobs.create_or_update({**spec, "jobs": {"stuck": {**spec["jobs"]["stuck"], "limits": {"timeout": 0}}}})
