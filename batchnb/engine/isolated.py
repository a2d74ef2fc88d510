"""A dry run in a deployment's own environment: the worker side's ``dry_run`` in another interpreter.

A deployment whose environment is built (:mod:`batchnb.environments`) must import its scoring script
with that environment's packages, which the calling process does not have. So the dry run runs here,
as ``<env python> -m batchnb.engine.isolated REQUEST RESULT``: only paths and small JSON records
cross, as with any worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..errors import JobFailedError


def dry_run_in(python: str, context: dict[str, Any], items: list[Any], n_items: int) -> dict[str, Any]:
    """Run :func:`batchnb.engine.worker.dry_run` with ``python`` and return its record.

    Raises:
        JobFailedError: the interpreter ended without a result (it could not start, or crashed);
            the message names it and ends with what it printed last.
    """
    with tempfile.TemporaryDirectory(prefix="batchnb-dry-run-") as scratch:
        request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request.write_text(json.dumps({"context": context, "items": items, "n_items": n_items}))
        done = subprocess.run(
            [python, "-m", "batchnb.engine.isolated", str(request), str(result)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the script's prints go to stderr (worker.dry_run), as in-process
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if not result.exists():
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise JobFailedError(
                f"the dry run in the deployment's environment ({python}) ended with exit code "
                f"{done.returncode} and no result" + (f": {tail}" if tail else "")
            )
        sys.stderr.write(done.stderr)
        return json.loads(result.read_text())  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    """The child: read the request, run the dry run, write its record."""
    from .worker import dry_run

    request = json.loads(Path(argv[0]).read_text())
    record = dry_run(request["context"], request["items"], request["n_items"])
    Path(argv[1]).write_text(json.dumps(record, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
