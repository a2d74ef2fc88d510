"""Scikit-learn models saved by MLflow, scored by the built-in driver without importing MLflow.

Why: a cold job's zygote loads the model before any worker starts, with one core busy and the
other idle. Through ``mlflow.pyfunc.load_model`` that meant importing mlflow (0.7 s on this kind of
machine) and, for a model saved with skops (MLflow 3's default), skops, whose import scans every
scikit-learn estimator (0.6 s more): 2.1 to 2.5 s from a clean interpreter to a loaded forest,
against 0.9 s for scikit-learn and a pickle. The driver's first mini-batch waited for all of it.

What this module does instead, for a model it fully understands (see :func:`plan`):

* **Load** the estimator as MLflow's ``mlflow.sklearn`` loader does: ``skops.io.load`` with the
  ``skops_trusted_types`` of the workspace's ``MLmodel`` (which the registry wrote: exactly the
  types the user trusted), or ``pickle`` / ``cloudpickle``. A skops-loaded estimator is then kept
  as a pickle in the workspace's cache folder (``BATCHNB_CACHE_DIR``), keyed by the model file's
  SHA-256, the trusted types and the versions of Python, numpy, scipy, scikit-learn and skops, so
  the next job loads it without skops. The pickle is made by batchnb from what skops loaded
  (mode 0600, in a 0700 folder), and is unpickled only if no other user could have replaced it:
  the file and its folder owned by the user running the job, writable by nobody else. Otherwise
  the entry is ignored, with one line in the log, and skops loads the model as if it were not cached.
* **Predict** as ``PyFuncModel.predict`` does for an input that already satisfies the signature:
  MLflow's schema enforcement then changes nothing and passes the signature's columns, in its
  order, to the estimator's predict function (extra columns dropped, with MLflow's warning, once
  per process). Any input that does not satisfy it exactly (a missing column, another dtype)
  goes through MLflow itself, loaded then, once per process, so its conversions and its errors
  apply unchanged.

``BATCHNB_MLFLOW_DIRECT=0`` in a deployment's environment variables scores everything through
MLflow. MLflow's ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false`` does too (MLflow then refuses).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

DIRECT_ENV = "BATCHNB_MLFLOW_DIRECT"
CACHE_ENV = "BATCHNB_CACHE_DIR"
# MLflow's column types that map to one numpy dtype (ColSpec DataType.to_numpy()).
SCALAR_TYPES = {
    "boolean": np.dtype(np.bool_),
    "integer": np.dtype(np.int32),
    "long": np.dtype(np.int64),
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
}
# What mlflow.sklearn's pyfunc wrapper exposes as a predict function.
PREDICT_FNS = ("predict", "predict_proba", "predict_log_proba", "predict_joint_log_proba", "score")
FORMATS = ("skops", "pickle", "cloudpickle")
_CACHE_VERSION = b"batchnb-sklearn-cache-1"

_log = logging.getLogger("batchnb.mlflow")


@dataclass(frozen=True)
class Plan:
    """How a model is loaded and scored directly."""

    model_file: Path
    serialization_format: str
    trusted: tuple[str, ...] | None
    predict_fn: str
    columns: tuple[tuple[str, np.dtype], ...] | None  # the signature's; None: no signature


def signature_inputs(mlmodel: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The input specs of ``MLmodel``'s signature (a JSON list in the YAML), or None without one."""
    signature = mlmodel.get("signature")
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    try:
        inputs = json.loads(signature["inputs"])
    except (TypeError, ValueError):
        return None
    return inputs if isinstance(inputs, list) else None


def numeric_columns(mlmodel: dict[str, Any]) -> list[tuple[str, np.dtype]]:
    """``(column, numpy dtype)`` for each named numeric or boolean column of the signature."""
    out = []
    for spec in signature_inputs(mlmodel) or []:
        if isinstance(spec, dict) and isinstance(spec.get("name"), str) and spec.get("type") in SCALAR_TYPES:
            out.append((spec["name"], SCALAR_TYPES[spec["type"]]))
    return out


def _deserialization_allowed() -> bool:
    value = os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION")
    return value is None or value.strip().lower() in ("true", "1")


def plan(folder: Path, mlmodel: dict[str, Any]) -> Plan | str:
    """A :class:`Plan` if the model in ``folder`` can be loaded and scored without MLflow, else why not."""
    if os.environ.get(DIRECT_ENV, "1").strip().lower() in ("0", "false", "no"):
        return f"{DIRECT_ENV} is off"
    if not _deserialization_allowed():
        return "MLFLOW_ALLOW_PICKLE_DESERIALIZATION is not true"
    flavors = mlmodel.get("flavors") or {}
    pyfunc, sklearn = flavors.get("python_function"), flavors.get("sklearn")
    if not isinstance(pyfunc, dict) or pyfunc.get("loader_module") != "mlflow.sklearn" or not isinstance(sklearn, dict):
        return "not a scikit-learn model"
    if pyfunc.get("code") or sklearn.get("code"):
        return "the model brings code paths"
    fmt = sklearn.get("serialization_format", "pickle")
    if fmt not in FORMATS:
        return f"serialization format {fmt!r}"
    predict_fn = pyfunc.get("predict_fn") or "predict"
    if predict_fn not in PREDICT_FNS:
        return f"predict function {predict_fn!r}"
    if mlmodel.get("is_signature_from_type_hint") or mlmodel.get("type_hint_from_example"):
        return "a signature from type hints"
    model_file = folder / str(pyfunc.get("model_path") or sklearn.get("pickled_model") or "")
    if not model_file.is_file():
        return "no model file"
    columns: tuple[tuple[str, np.dtype], ...] | None = None
    signature = mlmodel.get("signature")
    if isinstance(signature, dict) and signature.get("params"):
        return "a signature with params"
    inputs = signature_inputs(mlmodel)
    if inputs is None and isinstance(signature, dict) and signature.get("inputs"):
        return "a signature batchnb cannot read"
    if inputs == []:
        return "a signature without inputs"
    if inputs is not None:
        named = []
        for spec in inputs:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                return "a signature without column names"
            if spec.get("type") not in SCALAR_TYPES:
                return f"a signature column of type {spec.get('type')!r}"
            if spec.get("required", True) is not True:
                return "a signature with optional columns"
            named.append((spec["name"], SCALAR_TYPES[spec["type"]]))
        if len({name for name, _ in named}) != len(named):
            return "a signature with repeated columns"
        columns = tuple(named)
    trusted = sklearn.get("skops_trusted_types")
    return Plan(
        model_file=model_file,
        serialization_format=fmt,
        trusted=tuple(trusted) if isinstance(trusted, list) else None,
        predict_fn=predict_fn,
        columns=columns,
    )


def _version(distribution: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def cache_key(plan: Plan) -> str:
    """What a cached pickle of this model stands for: the file's bytes, the trusted types and the
    versions of everything that shapes the unpickled objects."""
    digest = hashlib.sha256(_CACHE_VERSION)
    with open(plan.model_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    facts = [sys.version, *(_version(d) for d in ("numpy", "scipy", "scikit-learn", "skops"))]
    digest.update(json.dumps([sorted(plan.trusted or []), facts]).encode())
    return digest.hexdigest()


class _Untrusted(Exception):
    """A cache entry that another user may have written."""


def _check_owner(info: os.stat_result, what: str) -> None:
    """Raise :class:`_Untrusted` unless ``info`` is of this user's, writable by nobody else."""
    if info.st_uid != os.getuid():
        raise _Untrusted(f"{what} is owned by uid {info.st_uid}, not by this user (uid {os.getuid()})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _Untrusted(f"{what} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})")


def _open_trusted(path: Path) -> BinaryIO | None:
    """``path`` opened for reading, or None if there is no such file.

    Unpickling runs code, so a cache entry is read only if no other user could have written it: the
    file and its folder owned by this user and writable by nobody else, as checked on the open
    descriptors (nothing can be swapped in between the check and the read).

    Raises:
        _Untrusted: Someone else may have written it.
    """
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        _check_owner(os.fstat(folder), f"its folder {path.parent}")
        fh = open(path.name, "rb", opener=lambda name, flags: os.open(name, flags, dir_fd=folder))  # noqa: SIM115
    except FileNotFoundError:
        return None
    finally:
        os.close(folder)
    try:
        info = os.fstat(fh.fileno())
        _check_owner(info, "the file")
        if not stat.S_ISREG(info.st_mode):
            raise _Untrusted("not a regular file")
    except BaseException:
        fh.close()
        raise
    return fh


def _load_cached(path: Path) -> Any:
    """The estimator cached at ``path``; None if there is none or it cannot be trusted (logged:
    the model is then loaded with skops, through its trusted types, as if it were not cached)."""
    try:
        fh = _open_trusted(path)
    except (_Untrusted, OSError) as exc:
        _log.warning("batchnb: not loading the cached model %s (%s): loading the model with skops", path, exc)
        return None
    if fh is None:
        return None
    with fh:
        try:
            return pickle.load(fh)
        except Exception as exc:  # an unreadable cache entry only costs the slow load: drop it
            _log.warning("batchnb: ignoring the cached model %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return None


def _store_cached(path: Path, estimator: Any) -> None:
    from ...files import atomic_write_bytes

    try:
        data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(path, data, durable=False, private=True)
    except Exception as exc:  # a read-only workspace, a full disk: the next job loads it with skops again
        _log.warning("batchnb: could not cache the loaded model in %s: %s", path.parent, exc)


def load_estimator(plan: Plan, cache_dir: str | None) -> tuple[Any, str]:
    """The estimator, and how it was loaded (``cache``, ``skops``, ``pickle``, ``cloudpickle``)."""
    if plan.serialization_format != "skops":
        with open(plan.model_file, "rb") as fh:
            if plan.serialization_format == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(fh), "cloudpickle"
            return pickle.load(fh), "pickle"
    cached = Path(cache_dir) / "sklearn" / f"{cache_key(plan)}.pickle" if cache_dir else None
    if cached is not None:
        estimator = _load_cached(cached)
        if estimator is not None:
            return estimator, "cache"
    import skops.io

    estimator = skops.io.load(plan.model_file, trusted=list(plan.trusted) if plan.trusted is not None else None)
    if cached is not None:
        _store_cached(cached, estimator)
    return estimator, "skops"


class DirectModel:
    """An MLflow scikit-learn model scored as ``PyFuncModel.predict`` would, MLflow loaded only when needed."""

    def __init__(self, folder: Path, plan: Plan, estimator: Any) -> None:
        self.folder = folder
        self.plan = plan
        self.estimator = estimator
        self._predict = getattr(estimator, plan.predict_fn)
        self._names = [name for name, _ in plan.columns] if plan.columns is not None else None
        self._pyfunc: Any = None
        self._warned_extra = False

    def _satisfies(self, data: Any) -> bool:
        """True if MLflow's schema enforcement would pass ``data`` through unchanged."""
        import pandas as pd

        if not isinstance(data, pd.DataFrame) or not data.index.is_unique:
            return False
        if self.plan.columns is None:
            return True
        if not data.columns.is_unique:
            return False
        dtypes = data.dtypes
        return all(name in dtypes.index and dtypes[name] == dtype for name, dtype in self.plan.columns)

    def predict(self, data: Any) -> Any:
        """Predictions for ``data``: directly if it satisfies the signature, else through MLflow."""
        if self._satisfies(data):
            if self._names is None:
                return self._predict(data)
            if len(data.columns) != len(self._names) and not self._warned_extra:
                self._warned_extra = True
                extra = [c for c in data.columns if c not in set(self._names)]
                _log.warning(
                    "Found extra inputs in the model input that are not defined in the model signature: "
                    "`%s`. These inputs will be ignored.",
                    extra,
                )
            return self._predict(data[self._names])
        return self.through_mlflow().predict(data)

    def through_mlflow(self) -> Any:
        """MLflow's own pyfunc model of the same folder (loaded on first use, in this process)."""
        if self._pyfunc is None:
            if self.plan.serialization_format == "skops":
                import skops.io  # noqa: F401 - before mlflow: skops's import scan is slower after it

            import mlflow.pyfunc

            self._pyfunc = mlflow.pyfunc.load_model(str(self.folder), suppress_warnings=True)
        return self._pyfunc
