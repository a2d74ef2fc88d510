"""Recovery by itself, for pipeline jobs: a pipeline job whose runner died, started again.

A pipeline job runs in a runner process of its own (:mod:`batchnb.pipelines.runner`), not on a
compute's agent, so no agent resumes it. When its runner dies (the machine rebooted, the process
was killed), the job is seen Interrupted and marked ``lost`` (:func:`batchnb.engine.state.check_interrupted`);
:func:`resume_lost` then starts a new runner for it, which keeps its completed steps and runs the
rest, up to the job's ``max_auto_resumes`` times (a pipeline job's ``settings``; 3 by default, as a
batch job's). Past that it stays Interrupted, with the reason, for ``job resume``. The front ends
call it where a compute's agent would have started: as the Jupyter server extension loads, and as
a pipeline job is submitted.
"""

from __future__ import annotations

import contextlib
import json

from ..engine import lifecycle, state
from ..engine.auto_resume import DEFAULT_MAX_AUTO_RESUMES, leave_for_job_resume
from ..engine.logs import JobLogs
from ..store import Store
from ..workspace import Workspace
from .runner import start_runner


def resume_lost(store: Store, workspace: Workspace, skip: str | None = None) -> list[str]:
    """Start a runner again for every pipeline job whose runner died, up to its ``max_auto_resumes``;
    past that, say so in its error. ``skip``: a job the caller is starting itself. Returns the jobs
    resumed."""
    marks = ", ".join("?" for _ in state.ACTIVE)
    with store.read() as db:
        active = db.execute(
            f"SELECT * FROM jobs WHERE kind = 'pipeline' AND status IN ({marks})",
            sorted(state.ACTIVE),
        ).fetchall()
    for row in active:
        if row["name"] != skip:
            state.check_interrupted(store, row)
    with store.read() as db:
        lost = db.execute(
            "SELECT name, spec, auto_resumes, error FROM jobs WHERE kind = 'pipeline' AND status = ? AND lost = 1",
            (state.INTERRUPTED,),
        ).fetchall()
    resumed = []
    for row in lost:
        limit = json.loads(row["spec"]).get("settings", {}).get("max_auto_resumes", DEFAULT_MAX_AUTO_RESUMES)
        job_dir = workspace.job_dir(row["name"])
        try:
            if row["auto_resumes"] >= limit:
                raise lifecycle.NotResumed(
                    f"not resumed automatically: its runner was lost {row['auto_resumes'] + 1} times "
                    f"(max_auto_resumes {limit})"
                )
            if not lifecycle.requeue(store, row["name"], reset_failed=False, auto=True):
                continue  # another front end resumed it first
            with contextlib.suppress(OSError):  # the logs may be what failed
                JobLogs(job_dir).event(
                    f"resumed automatically (automatic resume {row['auto_resumes'] + 1} of {limit}, after: "
                    f"{(row['error'] or 'its runner was lost').rstrip('. ')}); its completed steps are kept"
                )
            start_runner(store, workspace.root, row["name"], job_dir)
            resumed.append(row["name"])
        except Exception as exc:  # it stays Interrupted, with the reason, for `job resume`
            leave_for_job_resume(store, row, exc)
    return resumed
