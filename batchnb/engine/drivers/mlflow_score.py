"""The scoring script batchnb runs for an MLflow model deployed without one.

It behaves like the driver Azure generates: the model is loaded once per worker through the pyfunc
flavor (its signature enforced by MLflow); in file mode ``predict`` is called once per file, for
CSV and Parquet files; any other file type fails with the file named. A scikit-learn model with a
plain column signature is loaded and scored without importing MLflow, exactly as MLflow would score
it (:mod:`batchnb.engine.drivers.sklearn_direct`); any input MLflow would convert or refuse goes
through MLflow itself. The output has one row per
input row: ``row,prediction,file_name`` (comma-separated, no header, as Azure writes it), or, for an
output file ending in ``.parquet`` (``BATCHNB_OUTPUT_FORMAT=parquet``), the input columns plus
``prediction`` and ``file_name`` (and the source file and row, which the engine writes as the
output's lineage columns or drops, by the ``lineage_columns`` setting).

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

from batchnb.engine.drivers import MLFLOW_SUFFIXES, mlflow_model_folder, read_mlmodel, sklearn_direct
from batchnb.engine.output import EncodedLines

model: Any = None
# (column, numpy dtype) for the numeric columns of the model's column-based signature.
_numeric_columns: list[tuple[str, Any]] = []


def _model_folder(root: Path) -> Path:
    folder = mlflow_model_folder(root)
    if folder is None:
        raise FileNotFoundError(f"no MLflow model (MLmodel file) under AZUREML_MODEL_DIR={root}")
    return folder


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
    import sys

    from batchnb.environments.spec import unmet_requirements

    try:
        lines = (folder / "requirements.txt").read_text().splitlines()
    except OSError:
        lines = []
    found = unmet_requirements(lines)
    saved = str(flavors.get("python_function", {}).get("python_version") or "")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if saved and saved.split(".")[:2] != here.split("."):
        found.append(f"python (current: {sys.version.split()[0]}, saved with: {saved})")
    return found


# The model folder the loaded model came from: a warm worker's next job of the same model version
# finds it loaded (init() runs once per job, the model is loaded once per worker).
_loaded_from: str | None = None


def init() -> None:
    global model, _numeric_columns, _loaded_from
    import logging

    log = logging.getLogger("batchnb.mlflow")
    folder = _model_folder(Path(os.environ["AZUREML_MODEL_DIR"]))
    if _loaded_from == str(folder):
        log.info("batchnb: model kept from this worker's earlier job (%s)", folder)
        return
    mlmodel = read_mlmodel(folder)
    flavors = mlmodel.get("flavors") or {}
    mismatches = _requirement_mismatches(folder, flavors)
    if mismatches:
        log.warning("the model's dependencies do not match this environment:\n - %s", "\n - ".join(mismatches))
    plan = sklearn_direct.plan(folder, mlmodel)
    if isinstance(plan, sklearn_direct.Plan):
        estimator, how = sklearn_direct.load_estimator(plan, os.environ.get(sklearn_direct.CACHE_ENV))
        model = sklearn_direct.DirectModel(folder, plan, estimator)
        log.info("batchnb: scikit-learn model loaded from %s without MLflow (%s)", how, plan.model_file.name)
    else:
        _import_loader_first(flavors)
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(str(folder), suppress_warnings=True)
        log.info("batchnb: model loaded with mlflow.pyfunc (%s)", plan)
    _numeric_columns = sklearn_direct.numeric_columns(mlmodel)
    _number_texts(np.array([0.5]))  # pyarrow.compute imported and its casts ready
    _loaded_from = str(folder)


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


def _number_texts(values: np.ndarray) -> Any:
    """Each number as Python's repr writes it (numpy's str of the float64), as an Arrow string array.

    Arrow formats in C (whole lines: 16 against 64 ms per 100k here); its text differs from repr only for whole
    floats (``1`` for ``1.0``), below 1e-4 (no exponent where repr has one), from 1e10 (an exponent
    where repr has none, up to 1e16) and for -0.0: whole floats under 1e16 get their integer's text
    and ``.0``, the others repr's text.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    text_type = pa.large_string()
    if values.dtype.kind in "iu":
        return pc.cast(pa.array(values), text_type)
    floats = values.astype(np.float64, copy=False)  # float32 widened, as tolist() widens it
    texts = pc.cast(pa.array(floats), text_type)
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(floats)
        whole = (floats == np.trunc(floats)) & (magnitude < 1e16) & ~((floats == 0) & np.signbit(floats))
        by_repr = ~whole & ((magnitude < 1e-4) | (magnitude >= 1e10)) & np.isfinite(floats)
    by_repr |= (floats == 0) & np.signbit(floats)
    if whole.any():
        digits = pc.cast(pa.array(floats[whole].astype(np.int64)), text_type)
        ends = pc.binary_join_element_wise(digits, pa.scalar(".0", text_type), pa.scalar("", text_type))
        texts = pc.replace_with_mask(texts, pa.array(whole), ends)
    if by_repr.any():
        shown = pa.array([repr(v) for v in floats[by_repr].tolist()], text_type)
        texts = pc.replace_with_mask(texts, pa.array(by_repr), shown)
    return texts


def _numeric_lines(values: np.ndarray, first_row: int, quoted_name: str) -> bytes:
    """``row,prediction,file_name`` lines for numeric predictions, each ending in a newline."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(values) == 0:
        return b""
    text_type = pa.large_string()
    rows = pc.cast(pa.array(np.arange(first_row, first_row + len(values), dtype=np.int64)), text_type)
    end = pa.scalar(f"{quoted_name}\n", text_type)
    joined = pc.binary_join_element_wise(rows, _number_texts(values), end, pa.scalar(",", text_type))
    _, offsets, data = joined.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[joined.offset : joined.offset + len(joined) + 1]
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0])).to_pybytes()


def _lines(frames: list[tuple[pd.DataFrame, Any, str, int]]) -> EncodedLines:
    blocks: list[bytes] = []
    count = 0
    for _frame, values, path, first_row in frames:
        quoted_name = _csv_field(os.path.basename(path))
        count += len(values)
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            blocks.append(_numeric_lines(values, first_row, quoted_name))
            continue
        out = []
        rows = range(first_row, first_row + len(values))
        for row, value in zip(rows, values.tolist() if isinstance(values, np.ndarray) else values, strict=True):
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            out.append(f"{row},{_csv_field(shown)},{quoted_name}\n")
        blocks.append("".join(out).encode("utf-8"))
    return EncodedLines(b"".join(blocks), count)


def _table(frames: list[tuple[pd.DataFrame, Any, str, int]]) -> pd.DataFrame:
    parts = []
    for frame, values, path, first_row in frames:
        part = frame.reset_index(drop=True).copy()
        part["prediction"] = values
        part["file_name"] = os.path.basename(path)
        # Where each row comes from, for the output's lineage columns (the engine keeps or drops them).
        part["_source_file"] = path
        part["_source_row"] = np.arange(first_row, first_row + len(part), dtype=np.int64)
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
            frames.append((frame, _predict(frame), path, int(first_row)))
            start += count
    else:
        for path in mini_batch:
            frame = _read(path)
            frames.append((frame, _predict(frame), path, 0))
    if os.environ.get("BATCHNB_OUTPUT_FORMAT") == "parquet":
        return _table(frames)
    return _lines(frames)
