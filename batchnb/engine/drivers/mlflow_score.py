"""The scoring script batchnb runs for an MLflow model deployed without one.

It behaves like the driver Azure generates: the model is loaded once per worker through the pyfunc
flavor (its signature enforced by MLflow); in file mode ``predict`` is called once per file, for
CSV and Parquet files; any other file type fails with the file named. The output has one row per
input row: ``row,prediction,file_name`` (comma-separated, no header, as Azure writes it), or, for an
output file ending in ``.parquet`` (``BATCHNB_OUTPUT_FORMAT=parquet``), the input columns plus
``prediction`` and ``file_name``.

Column types are conformed to the model's signature when that changes no value (a CSV column of
whole numbers is read as integers, and MLflow refuses integers for a ``double`` column); any other
mismatch is left to MLflow's schema enforcement, whose error fails the mini-batch.

In tabular mode the engine says, in the frame's ``attrs["batchnb_sources"]``, which file each slice
of rows comes from and the index of its first row in that file, so ``row`` is the row's position in
its file there too.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from batchnb.engine.drivers import MLFLOW_SUFFIXES, mlflow_flavors, mlflow_model_folder

model: Any = None
# (column, numpy dtype) for the numeric columns of the model's column-based signature.
_numeric_columns: list[tuple[str, Any]] = []


def _model_folder(root: Path) -> Path:
    folder = mlflow_model_folder(root)
    if folder is None:
        raise FileNotFoundError(f"no MLflow model (MLmodel file) under AZUREML_MODEL_DIR={root}")
    return folder


def _signature_numeric_columns(loaded: Any) -> list[tuple[str, Any]]:
    try:
        schema = loaded.metadata.get_input_schema()
    except Exception:  # no metadata, an older MLmodel: no conforming, MLflow still enforces
        return []
    if schema is None or schema.is_tensor_spec():
        return []
    out = []
    for spec in schema.inputs:
        try:
            dtype = spec.type.to_numpy()
        except Exception:  # arrays, objects, maps: not a plain column type
            continue
        if spec.name is not None and dtype.kind in "biuf":
            out.append((spec.name, dtype))
    return out


def _import_loader_first(flavors: dict[str, Any]) -> None:
    """Import a skops-saved scikit-learn model's loader before mlflow. skops scans the loaded modules
    when it is imported; with mlflow's modules loaded that scan took about 0.9 s longer per worker
    (measured here: 3.8 s against 4.7 s for the imports of a cold worker)."""
    if flavors.get("sklearn", {}).get("serialization_format") == "skops":
        import importlib.util

        if importlib.util.find_spec("skops") is not None:
            import skops.io  # noqa: F401


def _requirement_mismatches(folder: Path, flavors: dict[str, Any]) -> list[str]:
    """What MLflow's load_model warns about, checked cheaply: each line of the model's
    requirements.txt against the installed distribution's version, and the Python version it was
    saved with. (MLflow maps every installed distribution to its modules first: 1.4 s per worker.)"""
    import importlib.metadata
    import importlib.util
    import sys

    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    try:
        lines = (folder / "requirements.txt").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if not text or text.startswith("-"):
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue  # a path or a URL: not checked, as MLflow does
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            # Another distribution may provide the module (mlflow-skinny's ``mlflow``): not flagged.
            if importlib.util.find_spec(req.name.replace("-", "_")) is None:
                found.append(f"{req.name} (current: uninstalled, required: {text})")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            found.append(f"{req.name} (current: {installed}, required: {text})")
    saved = str(flavors.get("python_function", {}).get("python_version") or "")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if saved and saved.split(".")[:2] != here.split("."):
        found.append(f"python (current: {sys.version.split()[0]}, saved with: {saved})")
    return found


def init() -> None:
    global model, _numeric_columns
    import logging

    folder = _model_folder(Path(os.environ["AZUREML_MODEL_DIR"]))
    flavors = mlflow_flavors(folder)
    _import_loader_first(flavors)
    import mlflow.pyfunc

    mismatches = _requirement_mismatches(folder, flavors)
    if mismatches:
        logging.getLogger("batchnb.mlflow").warning(
            "the model's dependencies do not match this environment:\n - %s", "\n - ".join(mismatches)
        )
    model = mlflow.pyfunc.load_model(str(folder), suppress_warnings=True)
    _numeric_columns = _signature_numeric_columns(model)


def _conform(frame: pd.DataFrame) -> pd.DataFrame:
    """Cast numeric columns to the signature's types where every value survives the cast."""
    out = frame
    for name, dtype in _numeric_columns:
        if name not in frame.columns:
            continue
        column = frame[name]
        if column.dtype == dtype or column.dtype.kind not in "biuf":
            continue
        try:
            cast = column.astype(dtype)
        except (TypeError, ValueError, OverflowError):
            continue
        same = (cast == column) | (cast.isna() & column.isna())
        if bool(same.all()):
            if out is frame:
                out = frame.copy()
            out[name] = cast
    return out


def _read(path: str) -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    if suffix not in MLFLOW_SUFFIXES:
        raise ValueError(
            f"Error processing input file: '{path}'. File type '{suffix.lstrip('.')}' is not "
            f"supported; MLflow deployments read {', '.join(MLFLOW_SUFFIXES)}"
        )
    return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)


def _as_values(predictions: Any, n: int) -> Any:
    """One prediction per row: a 1-D numpy array of numbers or booleans when the model gives one
    (kept as an array: 500k Python floats cost more than the writing), else a list."""
    if isinstance(predictions, pd.DataFrame):
        one_column = predictions.shape[1] == 1
        predictions = predictions.iloc[:, 0] if one_column else predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        predictions = predictions.to_numpy()
    if isinstance(predictions, np.ndarray) and predictions.ndim == 1 and predictions.dtype.kind in "biuf":
        values: Any = predictions
    elif hasattr(predictions, "tolist"):
        values = predictions.tolist()
    else:
        values = list(predictions)
    if len(values) != n:
        raise ValueError(f"predict() returned {len(values)} values for {n} rows")
    return values


def _predict(frame: pd.DataFrame) -> Any:
    return _as_values(model.predict(_conform(frame)), len(frame))


def _csv_field(value: Any) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([value])
    return buf.getvalue()


def _lines(frames: list[tuple[pd.DataFrame, Any, str, int]]) -> list[str]:
    out: list[str] = []
    for _frame, values, name, first_row in frames:
        quoted_name = _csv_field(name)
        rows = range(first_row, first_row + len(values))
        if isinstance(values, np.ndarray):
            # Numbers need no quoting, and Python's repr of a float is numpy's str of a float64
            # (float32 is widened by tolist()); formatting Python numbers is a third faster than
            # numpy's astype(str) (measured: 82 against 118 ms for 50k rows).
            out.extend(f"{row},{value!r},{quoted_name}" for row, value in zip(rows, values.tolist(), strict=True))
            continue
        for row, value in zip(rows, values, strict=True):
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            out.append(f"{row},{_csv_field(shown)},{quoted_name}")
    return out


def _table(frames: list[tuple[pd.DataFrame, Any, str, int]]) -> pd.DataFrame:
    parts = []
    for frame, values, name, _first_row in frames:
        part = frame.reset_index(drop=True).copy()
        part["prediction"] = values
        part["file_name"] = name
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def run(mini_batch: Any) -> Any:
    frames: list[tuple[pd.DataFrame, Any, str, int]] = []
    if isinstance(mini_batch, pd.DataFrame):
        # Tabular mode: the engine says which file each slice of rows came from, and where it starts.
        sources = mini_batch.attrs.get("batchnb_sources") or [("", 0, len(mini_batch))]
        start = 0
        for path, first_row, count in sources:
            frame = mini_batch.iloc[start : start + count]
            frames.append((frame, _predict(frame), os.path.basename(path), int(first_row)))
            start += count
    else:
        for path in mini_batch:
            frame = _read(path)
            frames.append((frame, _predict(frame), os.path.basename(path), 0))
    if os.environ.get("BATCHNB_OUTPUT_FORMAT") == "parquet":
        return _table(frames)
    return _lines(frames)
