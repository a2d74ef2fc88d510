"""Run a function component's function in its step: ``python -m batchnb.pipelines.fnrun function.pkl --x v ...``.

The payload (written by :mod:`batchnb.pipelines.dsl`) holds the function, pickled by value, and its
declared ports. Each ``--name value`` pair becomes a keyword argument: literal inputs converted to
their declared type, data inputs and outputs passed as the local paths the runner gave.

Unpickling runs code: the payload, in the workspace's code snapshots, is trusted as the workspace is
(whoever can write to it can run code as the user who runs jobs; see ``docs/security.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def _convert(value: str, port: dict[str, Any]) -> Any:
    kind = port.get("type")
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return value.strip().lower() == "true"
    return value


def main(argv: list[str] | None = None) -> int:
    import cloudpickle

    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("usage: python -m batchnb.pipelines.fnrun <payload> [--name value ...]", file=sys.stderr)
        return 2
    payload = cloudpickle.loads(Path(args[0]).read_bytes())
    inputs, outputs = payload["inputs"], set(payload["outputs"])
    kwargs: dict[str, Any] = {}
    rest = args[1:]
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        name = flag.removeprefix("--")
        kwargs[name] = value if name in outputs else _convert(value, inputs.get(name, {}))
    result = payload["func"](**kwargs)
    if result is not None:
        print(f"{payload['func'].__name__} returned: {result!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
