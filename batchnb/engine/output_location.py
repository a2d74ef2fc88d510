"""A job's output location: checked at invoke, held by one job at a time, and written at its end.

Two jobs writing one output file would each end Completed, the file holding the rows of one of
them. So the location a job writes (its ``append_row`` output file, or its ``summary_only`` output
folder, normalized) is reserved in the store's ``output_reservations`` table, whose key is that
path, in the transaction that records the job: of two invocations at once, exactly one gets it and
the other is refused before any work, naming the job that holds it.

A store trigger releases the location in the very transaction that ends the job ``Completed``,
``Failed`` or ``Canceled``, whichever process writes that status. An ``Interrupted`` job keeps it,
because ``resume`` will write there; ``resume`` and ``rerun-failed`` of a job that had ended take
it again, or are refused if another job holds it now.

Once released, a location is free for another job only if nothing is there: as on Azure, an
``append_row`` job refuses an output file that exists, whichever job or person wrote it (see
:meth:`batchnb.engine.invoke.BatchInvocation.resolve_output`), and its merge never replaces a file
it did not write (see :func:`merge`). A merge that cannot be done (the folder was made
unwritable, someone put a file there) ends the job ``Interrupted``, its reason saying what to fix:
every mini-batch stays scored, and ``resume`` merges again.
"""

from __future__ import annotations

import os
import posixpath
import sqlite3
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, ValidationError
from ..specfile import is_url
from . import output, state

if TYPE_CHECKING:
    from ..store import Store
    from .logs import JobLogs
    from .merge_stream import OutputStream


def reserved_path(spec: dict[str, Any]) -> str:
    """The normalized path a job holds: its output file (``append_row``) or its output folder.

    Local paths are made absolute with symbolic links resolved, so two spellings of one file are
    one key; URLs keep their protocol, with the path normalized.
    """
    where = spec["output"]["path"] if spec["settings"]["output_action"] == "append_row" else spec["output"]["dir"]
    if is_url(where):
        scheme, _, rest = where.partition("://")
        return f"{scheme.lower()}://{posixpath.normpath(rest)}"
    return os.path.normcase(os.path.realpath(where))


def reserve(tx: sqlite3.Connection, job: str, spec: dict[str, Any]) -> None:
    """Hold the job's output location, inside the caller's write transaction.

    Raises:
        ConflictError: Another job holds it; the message names that job.
    """
    path = reserved_path(spec)
    row = tx.execute("SELECT job FROM output_reservations WHERE path = ?", (path,)).fetchone()
    if row is not None and row["job"] != job:
        holder = row["job"]
        status = tx.execute("SELECT status FROM jobs WHERE name = ?", (holder,)).fetchone()["status"]
        # An Interrupted job ends only by a user's hand: say which.
        wait = f"resume or cancel {holder}" if status == state.INTERRUPTED else f"let {holder} end"
        raise ConflictError(
            f"the output {path} is held by job {holder} ({status}): two jobs never write one output; "
            f"choose another --output-path or output_file_name, or {wait} first"
        )
    # The write transaction (BEGIN IMMEDIATE) makes the check and the insert one step; the
    # table's key is what guarantees it should a writer ever skip the check.
    tx.execute(
        "INSERT OR IGNORE INTO output_reservations (path, job, created_at) VALUES (?, ?, ?)",
        (path, job, time.time()),
    )


def check_writable(folder: str) -> None:
    """Refuse an output folder this user cannot write, before any work.

    The nearest folder that exists (the output folder itself, or the ancestor it will be made in)
    must take a new file: one is really created and removed there, since permission bits do not
    tell (root ignores them; an immutable folder refuses even root). Remote (URL) outputs are not
    checked here; a failure to write them leaves the job resumable.

    Raises:
        ValidationError: The folder, or where it would be made, cannot be written; the message
            names it and the operating system's reason.
    """
    if is_url(folder):
        return
    wanted = Path(folder)
    existing = wanted
    while not os.path.exists(existing) and existing != existing.parent:
        existing = existing.parent
    made_in = "" if existing == wanted else f" (it would be made in {existing})"
    if not existing.is_dir():
        raise ValidationError(f"the output folder {folder} cannot be made: {existing} is a file", field="output_path")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".batchnb-write-check-"):
            pass
    except OSError as exc:
        raise ValidationError(
            f"the output folder {folder} is not writable{made_in}: {exc.strerror or exc}", field="output_path"
        ) from None


def check_resumable(job: str, spec: dict[str, Any], stamps: list[str]) -> None:
    """Before a job's output is written again (``resume``, ``rerun-failed``): its folder can be
    written, and no file other than the job's own is at its output path.

    Raises:
        ValidationError: The output folder cannot be written.
        ConflictError: Another file is where the job's output goes.
    """
    check_writable(spec["output"]["dir"])
    if spec["settings"]["output_action"] != "append_row":
        return
    destination = spec["output"]["path"]
    if output.is_foreign(destination, stamps):
        raise ConflictError(
            f"the output file {destination} exists and was not written by job {job}; "
            "batch jobs never overwrite an output: move it away, then run this again"
        )


def merge(
    store: Store, job: str, spec: dict[str, Any], logs: JobLogs, stream: OutputStream | None = None
) -> str | None:
    """The final step of an ``append_row`` job: merge its committed parts into its output file.

    Only the job's own earlier file is ever replaced (its stamps are kept in the store). A merge
    that cannot be done loses nothing: the parts stay, and ``resume`` merges again. ``stream``, the
    output appended to while the job ran (see :mod:`batchnb.engine.merge_stream`), is finished and
    put in place instead when it holds the first of these parts exactly.

    Returns:
        Why the merge could not be done, in one line that says what to do; None once the file is
        in place.
    """
    fmt = output.part_format(spec["settings"]["output_file_name"])
    destination = spec["output"]["path"]
    with store.read() as db:
        done = [
            r["idx"]
            for r in db.execute(
                "SELECT idx FROM minibatches WHERE job = ? AND status = 'done' AND rows > 0 "
                "ORDER BY COALESCE(pos, idx), idx",  # input order: a split mini-batch's half has a new idx
                (job,),
            )
        ]
        stamps = db.execute("SELECT output_stamp FROM jobs WHERE name = ?", (job,)).fetchone()[0]
    parts = [output.part_path(Path(spec["job_dir"]) / "parts", idx, fmt) for idx in done]

    def keep(stamps: list[str]) -> None:
        with store.write() as tx:
            tx.execute("UPDATE jobs SET output_stamp = ? WHERE name = ?", (" ".join(stamps), job))

    then = f"then run `batchnb job resume -n {job}` to finish the merge (every mini-batch is kept)"
    try:
        drop = () if output.lineage_enabled(spec["settings"]) else output.LINEAGE_COLUMNS
        built = stream.finish(parts) if stream is not None else None
        written = output.merge_parts(
            parts, destination, fmt, owned=(stamps or "").split(), record=keep, drop=drop, built=built
        )
    except output.ForeignOutputError as exc:
        return f"{exc.message}: move it away, {then}"
    except OSError as exc:
        logs.event(f"merge failed:\n{traceback.format_exc()}")
        return f"could not write the output into {spec['output']['dir']}: {exc.strerror or exc}; fix that, {then}"
    except Exception as exc:  # e.g. a remote filesystem's own error: the parts are kept all the same
        logs.event(f"merge failed:\n{traceback.format_exc()}")
        reason = " ".join(str(exc).split()) or type(exc).__name__
        return f"could not write the output {destination}: {reason}; {then}"
    unit = "rows" if fmt == "parquet" else "bytes"
    how = " (appended as they were committed)" if built else ""
    logs.event(f"merged {len(parts)} part(s) into {destination} ({written} {unit}){how}")
    return None
