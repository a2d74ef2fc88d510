"""Schema migrations. Append only: never edit a migration that has shipped.

``PRAGMA user_version`` holds the number of migrations applied. Specs are JSON text, so the
pydantic models in :mod:`batchnb.schemas` can grow fields without a migration.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: registry, endpoints, deployments, jobs and their mini-batches
    """
    CREATE TABLE assets (
        kind TEXT NOT NULL,               -- model | data | environment | component
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        seq INTEGER NOT NULL,             -- creation order within (kind, name): decides @latest
        spec TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (kind, name, version)
    );
    CREATE TABLE datastores (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE computes (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE endpoints (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE deployments (
        endpoint TEXT NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
        name TEXT NOT NULL,
        revision INTEGER NOT NULL,
        spec TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (endpoint, name)
    );
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,               -- batch (model deployment) | pipeline
        endpoint TEXT,                    -- no foreign key: jobs outlive their endpoint
        deployment TEXT,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,               -- everything the supervisor needs, resolved at invoke time
        error TEXT,
        invoked_by TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        heartbeat_at REAL,
        supervisor_pid INTEGER,
        supervisor_started REAL,          -- the pid's create time: pids are reused
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        planned INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_by_endpoint ON jobs(endpoint, deployment, created_at);
    CREATE TABLE minibatches (
        job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        items TEXT NOT NULL,              -- JSON list: file paths, or {path,row_groups,rows} chunks
        n_items INTEGER NOT NULL,
        status TEXT NOT NULL,             -- pending | running | done | failed
        attempts INTEGER NOT NULL DEFAULT 0,
        succeeded INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        rows INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        started_at REAL,
        ended_at REAL,
        duration REAL NOT NULL DEFAULT 0,
        error TEXT,
        PRIMARY KEY (job, idx)
    );
    CREATE INDEX minibatches_by_status ON minibatches(job, status);
    """,
]

MIGRATIONS.append(
    # 2: SSH clusters: one row per running cluster (its keeper process and scheduler address), and
    # the jobs holding a lease on it (the keeper stops the cluster when none has for a while).
    """
    CREATE TABLE clusters (
        compute TEXT PRIMARY KEY,
        state TEXT NOT NULL,              -- starting | ready | failed
        address TEXT,
        keeper_pid INTEGER,
        keeper_started REAL,
        heartbeat_at REAL,
        started_at REAL,
        error TEXT
    );
    CREATE TABLE cluster_leases (
        compute TEXT NOT NULL,
        job TEXT NOT NULL,
        PRIMARY KEY (compute, job)
    );
    """
)

MIGRATIONS.append(
    # 3: pipeline jobs. A step of a pipeline is a child job (kind 'command') with its parent's name
    # and its step name; process_pid/process_started name the step's running command (its process
    # group), so a resumed runner can stop what a lost one left running.
    """
    ALTER TABLE jobs ADD COLUMN parent TEXT;
    ALTER TABLE jobs ADD COLUMN step TEXT;
    ALTER TABLE jobs ADD COLUMN process_pid INTEGER;
    ALTER TABLE jobs ADD COLUMN process_started REAL;
    CREATE INDEX jobs_by_parent ON jobs(parent);
    """
)

MIGRATIONS.append(
    # 4: output locations. A running job holds its output (the append_row file, or the summary_only
    # folder; the normalized path) so that no second job writes there; the trigger releases it in
    # the transaction that ends the job Completed, Failed or Canceled, whichever process writes it.
    # An Interrupted job keeps it: resume writes there. output_stamp identifies the file the job's
    # merge wrote (see engine.output.file_stamp): the only existing file a merge may replace.
    """
    CREATE TABLE output_reservations (
        path TEXT PRIMARY KEY,
        job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
        created_at REAL NOT NULL
    );
    CREATE INDEX output_reservations_by_job ON output_reservations(job);
    ALTER TABLE jobs ADD COLUMN output_stamp TEXT;
    CREATE TRIGGER output_released AFTER UPDATE OF status ON jobs
    WHEN NEW.status IN ('Completed', 'Failed', 'Canceled')
    BEGIN
        DELETE FROM output_reservations WHERE job = NEW.name;
    END;
    """
)

MIGRATIONS.append(
    # 5: compute agents, which also own ssh computes' clusters (the clusters and leases of
    # migration 2 go with the keeper processes they served). One row per compute whose agent runs
    # (pid and its create time: pids are reused), stamped by the agent every second; a row whose pid
    # is dead is free to take. stop_requested asks it to stop (``compute stop``). A job's compute is
    # read from its spec; ``lost`` marks a job Interrupted because its owner died (the next agent
    # resumes it, ``auto_resumes`` times at most); ``waiting`` says why a Queued job has not started.
    """
    CREATE TABLE agents (
        compute TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        started REAL NOT NULL,
        host TEXT NOT NULL,
        created_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        stop_requested INTEGER NOT NULL DEFAULT 0,
        capacity INTEGER NOT NULL DEFAULT 0,
        workers INTEGER NOT NULL DEFAULT 0,
        rss INTEGER NOT NULL DEFAULT 0,
        cluster TEXT                      -- an ssh compute's scheduler address while it runs
    );
    DROP TABLE cluster_leases;
    DROP TABLE clusters;
    ALTER TABLE jobs ADD COLUMN compute TEXT GENERATED ALWAYS AS (json_extract(spec, '$.compute')) VIRTUAL;
    ALTER TABLE jobs ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN auto_resumes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN waiting TEXT;
    CREATE INDEX jobs_by_status ON jobs(status, compute);
    """
)

MIGRATIONS.append(
    # 6: archived jobs (``az ml job archive``): left out of job listings until restored. The index
    # serves the job list's default order (newest first) and its date filters.
    """
    ALTER TABLE jobs ADD COLUMN archived_at REAL;
    CREATE INDEX jobs_by_created ON jobs(created_at);
    """
)

MIGRATIONS.append(
    # 7: incremental invocations. The fingerprints (content hashes) of the items of each mini-batch
    # of an `invoke --incremental` job, under the job's scoring key (deployment revision, model,
    # code, environment, settings): a later incremental job with the same key reuses the committed
    # rows of a mini-batch whose items it has, by content, in the same order.
    """
    CREATE TABLE scored_inputs (
        job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        scoring_key TEXT NOT NULL,
        first_item TEXT NOT NULL,
        items TEXT NOT NULL,
        PRIMARY KEY (job, idx)
    );
    CREATE INDEX scored_inputs_by_first ON scored_inputs(scoring_key, first_item);
    """
)

MIGRATIONS.append(
    # 8: failed items as data (issue 20). One row per item that failed for good: a file, or a
    # tabular chunk (its row range), with its mini-batch, attempts, the error and where its
    # traceback is; `why` says how it failed (raised | timeout | crashed | missing: left out of a
    # short run() result). A mini-batch's rows go when it is scored again. minibatches.pos is the
    # input position of a mini-batch's first item (outputs follow it: a mini-batch split to isolate
    # bad items gets new indices, never new places); revision is the deployment revision that
    # scored it (`rerun-failed --latest` scores failed items on a newer one).
    """
    CREATE TABLE failed_items (
        job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        item TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        why TEXT NOT NULL,
        error_type TEXT,
        error TEXT,
        traceback TEXT,
        revision INTEGER,
        failed_at REAL NOT NULL,
        PRIMARY KEY (job, idx, item)
    );
    ALTER TABLE minibatches ADD COLUMN pos INTEGER;
    ALTER TABLE minibatches ADD COLUMN revision INTEGER;
    UPDATE minibatches SET pos = w.pos FROM (
        SELECT job, idx, SUM(n_items) OVER (PARTITION BY job ORDER BY idx) - n_items AS pos FROM minibatches
    ) AS w WHERE w.job = minibatches.job AND w.idx = minibatches.idx;
    """
)

MIGRATIONS.append(
    # 9: each mini-batch attempt (issue 25), for the per-worker timeline: which worker process ran
    # it (``worker``, ``pid``; NULL when its worker was lost and nobody knows), from when to when by
    # the worker's clock (a lost one: from its hand-off to its loss), and what came of it: ok,
    # retried (it failed and was queued again, whole or split in halves) or failed (for good). A
    # minibatches row holds only its last attempt. failed_items.traceback_text is the traceback
    # itself (``traceback`` names the per-process log file that holds it among others), so the
    # failed items table can show it without parsing logs.
    """
    CREATE TABLE attempts (
        job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        items INTEGER NOT NULL,
        worker TEXT,
        pid INTEGER,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        outcome TEXT NOT NULL,            -- ok | retried | failed
        error TEXT
    );
    CREATE INDEX attempts_by_job ON attempts(job, started_at);
    ALTER TABLE failed_items ADD COLUMN traceback_text TEXT;
    """
)

MIGRATIONS.append(
    # 10: when the job's current run began (each claim sets it: the first start, a resume, a rerun),
    # so the ETA is measured over the progress of this run, not since the first start (issue 25).
    """
    ALTER TABLE jobs ADD COLUMN run_started_at REAL;
    UPDATE jobs SET run_started_at = started_at;
    """
)
