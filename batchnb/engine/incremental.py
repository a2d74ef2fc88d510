"""``invoke --incremental``: score only the input files that no earlier job scored the same way.

An incremental invocation plans its mini-batches itself, at invoke (the supervisor then finds the
job planned, as it finds a resumed one, and scores only the pending mini-batches). Each input file
is identified by its content: the SHA-256 of its bytes, or for a remote file its ETag (else its
URL, size and modification time). A mini-batch of an earlier incremental job is reused whole when

* that job is ``Completed`` and has the same :func:`batchnb.engine.lineage.scoring_key`: the same
  deployment revision, model version, code, environment and scoring settings;
* the mini-batch succeeded on every item; and
* its files, by name and content and in order, come next in this input (in tabular mode: the same
  chunk of the same file); a file moved to another folder is still the same file.

Its committed part file is copied into the new job (its lineage columns rewritten to the new
job's file paths and mini-batch numbers), so the new job's output holds every row, in input
order, exactly as a full run would have written it. Files between reused runs are grouped into
new mini-batches of up to ``mini_batch_size``. Every incremental job records its mini-batches'
fingerprints (store table ``scored_inputs``), reused ones included, for the next one to find.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError
from ..files import atomic_write_bytes
from ..specfile import is_url
from . import output, planner

if TYPE_CHECKING:
    import sqlite3

    from ..store import Store


def fingerprint(path: str) -> str:
    """What identifies an input file's content: ``sha256:<hex>`` of a local file; of a remote one,
    ``etag:<etag>`` when its store gives one, else ``stat:<url>:<size>:<mtime>``."""
    if not is_url(path):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return "sha256:" + digest.hexdigest()
    import fsspec

    fs, remote = fsspec.core.url_to_fs(path)
    info = fs.info(remote)
    etag = next((info[k] for k in ("ETag", "etag", "Etag") if info.get(k)), None)
    if etag:
        return f"etag:{str(etag).strip(chr(34))}"
    mtime = next((info[k] for k in ("mtime", "LastModified", "last_modified", "updated", "created") if info.get(k)), "")
    return f"stat:{path}:{info.get('size')}:{mtime}"


@dataclass
class Planned:
    """One mini-batch of an incremental job: its items, their fingerprints, and what it reuses."""

    items: list[Any]
    fingerprints: list[str]
    reused: dict[str, Any] | None = None  # the earlier mini-batch: job, idx, items, succeeded, rows


@dataclass
class IncrementalPlan:
    """What an incremental invocation scores and what it reuses."""

    batches: list[Planned] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts ``job show`` reports under ``incremental``."""
        reused = [b for b in self.batches if b.reused]
        return {
            "mini_batches_reused": len(reused),
            "items_reused": sum(planner.minibatch_items(b.items) for b in reused),
            "rows_reused": sum(int(b.reused["rows"]) for b in reused if b.reused),
            "mini_batches_to_score": len(self.batches) - len(reused),
            "items_to_score": sum(planner.minibatch_items(b.items) for b in self.batches if not b.reused),
            "reused_from": sorted({b.reused["job"] for b in reused if b.reused}),
        }


def _candidates(store: Store, key: str) -> dict[str, list[dict[str, Any]]]:
    """The reusable mini-batches of earlier jobs with scoring key ``key``, by their first item's
    fingerprint, newest job first."""
    with store.read() as db:
        rows = db.execute(
            "SELECT s.job, s.idx, s.first_item, s.items AS fingerprints, m.items, m.n_items, m.succeeded, m.rows, "
            "j.spec FROM scored_inputs s JOIN minibatches m ON m.job = s.job AND m.idx = s.idx "
            "JOIN jobs j ON j.name = s.job WHERE s.scoring_key = ? AND j.status = 'Completed' "
            "AND m.status = 'done' AND m.failed = 0 ORDER BY j.created_at DESC, s.idx",
            (key,),
        ).fetchall()
    found: dict[str, list[dict[str, Any]]] = {}
    part_dirs: dict[str, Path] = {}
    for r in rows:
        if r["job"] not in part_dirs:
            part_dirs[r["job"]] = Path(json.loads(r["spec"])["job_dir"]) / "parts"
        found.setdefault(r["first_item"], []).append(
            {
                "job": r["job"],
                "idx": r["idx"],
                "fingerprints": json.loads(r["fingerprints"]),
                "items": json.loads(r["items"]),
                "succeeded": r["succeeded"],
                "rows": r["rows"],
                "parts": part_dirs[r["job"]],
            }
        )
    return found


def _usable(candidate: dict[str, Any], fmt: str) -> bool:
    """The earlier mini-batch's rows are still there to copy (or it wrote none)."""
    return candidate["rows"] == 0 or output.part_is_committed(
        output.part_path(candidate["parts"], candidate["idx"], fmt)
    )


def plan(store: Store, spec: dict[str, Any]) -> IncrementalPlan:
    """Cut the job's input into mini-batches, reusing the earlier ones the module's docstring allows.

    Raises:
        ValidationError: The input cannot be listed or read, or the job writes no rows
            (``summary_only``), which leaves nothing to reuse.
    """
    settings = spec["settings"]
    if settings["output_action"] != "append_row":
        raise ValidationError(
            "--incremental reuses committed output rows, and a summary_only job writes none: "
            "use output_action: append_row",
            field="incremental",
        )
    inp = spec["input"]
    files = planner.list_input_files(inp["path"], inp["type"], settings.get("recursive", False))
    planner.check_builtin_inputs(spec, files)
    try:
        # A file's name is part of what identifies it: a script (or the MLflow driver's file_name
        # column) may write it into its rows, which a renamed file must not inherit.
        prints = {path: f"{Path(path).name}|{fingerprint(path)}" for path in files}
    except OSError as exc:
        raise ValidationError(
            f"input file {exc.filename or inp['path']} cannot be read: {exc.strerror or exc}", field="input"
        ) from None
    fmt = output.part_format(settings["output_file_name"])
    found = _candidates(store, spec["lineage"]["scoring_key"])
    result = IncrementalPlan()
    size = settings["mini_batch_size"]
    if settings["mini_batch_mode"] == "tabular":
        for chunk in planner.plan_tabular_minibatches(files, size):
            fps = [f"{prints[c['path']]}#{c['row_groups']}" for c in chunk]
            match = next((c for c in found.get(fps[0], []) if c["fingerprints"] == fps and _usable(c, fmt)), None)
            result.batches.append(Planned(chunk, fps, match))
        return result
    fps = [prints[f] for f in files]
    pending: list[int] = []

    def flush() -> None:
        if pending:
            result.batches.append(Planned([files[i] for i in pending], [fps[i] for i in pending]))
            pending.clear()

    i = 0
    while i < len(files):
        match = next(
            (
                c
                for c in found.get(fps[i], [])
                if fps[i : i + len(c["fingerprints"])] == c["fingerprints"] and _usable(c, fmt)
            ),
            None,
        )
        if match is None:
            pending.append(i)
            if len(pending) == int(size):
                flush()
            i += 1
            continue
        flush()
        n = len(match["fingerprints"])
        result.batches.append(Planned(files[i : i + n], fps[i : i + n], match))
        i += n
    flush()
    return result


def record(tx: sqlite3.Connection, job: str, spec: dict[str, Any], planned: IncrementalPlan) -> None:
    """Insert the job's mini-batches (reused ones done, the rest pending), mark it planned, and
    record their fingerprints; inside the write transaction that records the job."""
    key = spec["lineage"]["scoring_key"]
    now = time.time()
    pos = 0
    for idx, b in enumerate(planned.batches):
        n = planner.minibatch_items(b.items)
        if b.reused:
            tx.execute(
                "INSERT INTO minibatches (job, idx, items, n_items, status, succeeded, rows, worker, started_at, "
                "ended_at, pos) VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?, ?, ?)",
                (
                    job,
                    idx,
                    json.dumps(b.items),
                    n,
                    b.reused["succeeded"],
                    b.reused["rows"],
                    f"reused from {b.reused['job']} mini-batch {b.reused['idx']}",
                    now,
                    now,
                    pos,
                ),
            )
        else:
            tx.execute(
                "INSERT INTO minibatches (job, idx, items, n_items, status, pos) VALUES (?, ?, ?, ?, 'pending', ?)",
                (job, idx, json.dumps(b.items), n, pos),
            )
        pos += n
        tx.execute(
            "INSERT INTO scored_inputs (job, idx, scoring_key, first_item, items) VALUES (?, ?, ?, ?, ?)",
            (job, idx, key, b.fingerprints[0], json.dumps(b.fingerprints)),
        )
    tx.execute("UPDATE jobs SET planned = 1 WHERE name = ?", (job,))


def copy_parts(job_dir: Path, spec: dict[str, Any], planned: IncrementalPlan) -> None:
    """Put each reused mini-batch's part into the new job's ``parts/``. A Parquet part's lineage
    columns are rewritten to this job's file paths and mini-batch number; a text part is linked
    (parts are never written in place, only replaced by a rename). A part that cannot be copied
    is scored again: the supervisor re-queues a committed mini-batch whose part is missing."""
    fmt = output.part_format(spec["settings"]["output_file_name"])
    parts = job_dir / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    for idx, b in enumerate(planned.batches):
        if not b.reused or not b.reused["rows"]:
            continue
        source = output.part_path(b.reused["parts"], b.reused["idx"], fmt)
        target = output.part_path(parts, idx, fmt)
        try:
            if fmt == "parquet":
                _relabel(source, target, idx, _paths(b.reused["items"], b.items))
            else:
                _link_or_copy(source, target)
        except OSError:
            continue


def _paths(old: list[Any], new: list[Any]) -> dict[str, str]:
    """Each earlier item's file path, mapped to the file of the same content in this input."""

    def path(item: Any) -> str:
        return str(item["path"] if isinstance(item, dict) else item)

    return {path(o): path(n) for o, n in zip(old, new, strict=True)}


def _relabel(source: Path, target: Path, idx: int, paths: dict[str, str]) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(source)
    names = table.column_names
    if "_mini_batch" in names:
        table = table.set_column(names.index("_mini_batch"), "_mini_batch", pa.array([idx] * len(table), pa.int64()))
    if "_source_file" in names and any(k != v for k, v in paths.items()):
        column = table.column("_source_file").to_pylist()
        relabeled = pa.array([paths.get(v, v) if v is not None else None for v in column], pa.string())
        table = table.set_column(names.index("_source_file"), "_source_file", relabeled)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(target, buf.getvalue(), durable=False)


def _link_or_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.reuse.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
