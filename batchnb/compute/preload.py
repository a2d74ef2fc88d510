"""What the zygote imports ahead of a job's workers (see :mod:`batchnb.compute.zygote`).

Everything a worker imports before its first ``run()`` costs seconds of CPU: paid in the zygote, it
is paid once per agent, and a worker forked later (for another job, after a crash, after a hung
``run()`` was killed) starts with it done. Three sources say what a job's workers will import,
each read without running anything of the user's:

* the data stack every worker uses (:data:`batchnb.compute.zygote.BASE_MODULES`);
* the scoring script's top-level imports, read with :mod:`ast` (:func:`script_imports`);
* for an MLflow model, what loading it imports: the flavor's loader module, named in ``MLmodel``,
  and the classes its scikit-learn file is made of, named in the file (a skops file's
  ``schema.json``; a pickle's globals, read with :mod:`pickletools`, never unpickled).

Only packages known to be safe to fork after importing are taken (:data:`FORK_SAFE_PACKAGES`).
"""

from __future__ import annotations

import json
import pickletools
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .zygote import BASE_MODULES

# Packages the zygote may import ahead of a job: common, slow to import, and safe to fork after
# importing (none starts threads or opens devices at import).
FORK_SAFE_PACKAGES = frozenset({"numpy", "pandas", "pyarrow", "scipy", "sklearn", "mlflow", "skops", "joblib"})
# A pickled model larger than this is not read for the classes it names: reading it would cost more
# than the imports it could save.
_MAX_PICKLE_SCAN_BYTES = 64 * 2**20


def preload_for(spec: dict[str, Any]) -> tuple[str, ...]:
    """What the zygote imports ahead of a job like this one: the data stack; batchnb's MLflow
    driver for a model without a scoring script; for a user's scoring script, what it imports at
    its top level of :data:`FORK_SAFE_PACKAGES`, and ``mlflow.pyfunc`` if it imports mlflow; for an
    MLflow model loaded by either, what loading it imports (:func:`model_imports`)."""
    modules = list(BASE_MODULES)
    model = model_imports(Path(spec["model_dir"])) if spec.get("model_dir") else []
    if spec.get("builtin_driver") == "mlflow":
        return tuple(dict.fromkeys([*modules, "batchnb.engine.drivers.mlflow_score", *model]))
    if not (spec.get("code_dir") and spec.get("scoring_script")):
        return tuple(modules)
    imported = script_imports(Path(spec["code_dir"]) / spec["scoring_script"])
    modules += [m for m in imported if _fork_safe(m)]
    if any(m.split(".")[0] == "mlflow" for m in imported):
        modules += ["mlflow.pyfunc", *model]
    return tuple(dict.fromkeys(modules))


def _fork_safe(module: str) -> bool:
    return module.split(".")[0] in FORK_SAFE_PACKAGES


def script_imports(script: Path) -> list[str]:
    """The modules a scoring script imports at its top level (also inside a top-level ``try``, its
    ``except`` fallbacks, or ``if``), in order; [] if it cannot be read or parsed (its job reports that)."""
    import ast

    try:
        tree = ast.parse(script.read_text(), filename=str(script))
    except (OSError, SyntaxError, ValueError):
        return []
    found: list[str] = []
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append(node.module)
        elif isinstance(node, ast.If):
            pending[:0] = [*node.body, *node.orelse]
        elif isinstance(node, ast.Try):
            handlers = [stmt for handler in node.handlers for stmt in handler.body]
            pending[:0] = [*node.body, *handlers, *node.orelse, *node.finalbody]
    return found


def _mlmodel(model_dir: Path) -> Path | None:
    """The ``MLmodel`` file of the model in ``model_dir``: there, or in the sub-folder Azure's
    ``AZUREML_MODEL_DIR`` puts it in."""
    for candidate in (model_dir / "MLmodel", *sorted(model_dir.glob("*/MLmodel"))):
        if candidate.is_file():
            return candidate
    return None


def model_imports(model_dir: Path) -> list[str]:
    """The fork-safe modules that loading the MLflow model in ``model_dir`` imports, as far as its
    files say; [] for anything else, or anything unreadable (the worker imports what it needs)."""
    import yaml

    found = _mlmodel(model_dir)
    if found is None:
        return []
    try:
        flavors = (yaml.safe_load(found.read_text()) or {}).get("flavors") or {}
        modules = [str(flavors["python_function"]["loader_module"])] if "python_function" in flavors else []
        sklearn = flavors.get("sklearn") or {}
        if sklearn.get("pickled_model"):
            pickled = found.parent / str(sklearn["pickled_model"])
            if sklearn.get("serialization_format") == "skops":
                # skops.io itself imports every estimator of scikit-learn, to know which are safe.
                modules += ["skops.io", *_skops_modules(pickled)]
            elif pickled.stat().st_size <= _MAX_PICKLE_SCAN_BYTES:
                modules += _pickle_modules(pickled)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zipfile.BadZipFile, yaml.YAMLError):
        return []
    return [m for m in dict.fromkeys(modules) if _fork_safe(m)]


def _skops_modules(path: Path) -> list[str]:
    """The modules of the classes a skops file is made of (its ``schema.json`` names them)."""
    with zipfile.ZipFile(path) as archive:
        schema = json.loads(archive.read("schema.json"))

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("__module__"), str):
                yield node["__module__"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    return list(walk(schema))


def _pickle_modules(path: Path) -> list[str]:
    """The modules of the globals a pickle refers to, read from its opcodes (it is never unpickled)."""
    modules: list[str] = []
    recent: list[str] = []  # the strings pushed last: STACK_GLOBAL takes its module and name from them
    with open(path, "rb") as fh:
        for op, arg, _ in pickletools.genops(fh):
            if op.name == "GLOBAL" and isinstance(arg, str):
                modules.append(arg.split(" ")[0])
            elif op.name == "STACK_GLOBAL" and len(recent) >= 2:
                modules.append(recent[-2])
            elif isinstance(arg, str) and "UNICODE" in op.name:
                recent = [*recent[-1:], arg]
    return modules
