"""Writing a file so that whoever reads it sees all of it or none: through a temporary file and a
rename. Every layer writes this way (job logs and parts, the zygote's record, datastore secrets),
so it lives below all of them."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True, private: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    The rename alone makes the write atomic for readers and safe against a killed process (the page
    cache outlives it). ``durable`` also fsyncs, which only a power loss needs and which costs
    about a millisecond per file: parts skip it, because a resumed job checks its committed parts
    again (see :func:`part_is_committed`) and scores a lost one anew. ``private`` makes the file
    readable by its owner only (mode 0600), from its creation.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
    except OSError as exc:  # named after the file being written, not its temporary name
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a folder made read-only: leave no temporary file behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
