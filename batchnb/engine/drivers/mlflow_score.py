"""The scoring script batchnb runs for an MLflow model deployed without one.

It behaves like the driver Azure generates: the model is loaded once per worker through the pyfunc
flavor (its signature enforced by MLflow); in file mode ``predict`` is called once per file, for
CSV and Parquet files; any other file type fails with the file named. The output has one row per
input row: ``row,prediction,file_name`` (comma-separated, no header, as Azure writes it), or, for an
output file ending in ``.parquet``, the input columns plus ``prediction`` and ``file_name``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

SUPPORTED = (".csv", ".parquet", ".pqt")

model: Any = None


def _model_folder(root: Path) -> Path:
    if (root / "MLmodel").is_file():
        return root
    found = sorted(root.glob("*/MLmodel"))
    if not found:
        raise FileNotFoundError(f"no MLflow model (MLmodel file) under AZUREML_MODEL_DIR={root}")
    return found[0].parent


def init() -> None:
    global model
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(_model_folder(Path(os.environ["AZUREML_MODEL_DIR"]))))


def _read(path: str) -> pd.DataFrame:
    suffix = Path(path).suffix.lower()
    if suffix not in SUPPORTED:
        raise ValueError(
            f"Error processing input file: '{path}'. File type '{suffix.lstrip('.')}' is not "
            f"supported; MLflow deployments read {', '.join(SUPPORTED)}"
        )
    return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)


def _as_values(predictions: Any, n: int) -> list[Any]:
    if isinstance(predictions, pd.DataFrame):
        if predictions.shape[1] == 1:
            return predictions.iloc[:, 0].tolist()
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return predictions.tolist()
    values = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
    if len(values) != n:
        raise ValueError(f"predict() returned {len(values)} values for {n} rows")
    return values


def _lines(frames: list[tuple[pd.DataFrame, list[Any], str, int]]) -> list[str]:
    out = []
    for _frame, values, name, first_row in frames:
        for offset, value in enumerate(values):
            buf = io.StringIO()
            shown = json.dumps(value) if isinstance(value, dict | list) else value
            csv.writer(buf, lineterminator="").writerow([first_row + offset, shown, name])
            out.append(buf.getvalue())
    return out


def _table(frames: list[tuple[pd.DataFrame, list[Any], str, int]]) -> pd.DataFrame:
    parts = []
    for frame, values, name, _first_row in frames:
        part = frame.reset_index(drop=True).copy()
        part["prediction"] = values
        part["file_name"] = name
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def run(mini_batch: Any) -> Any:
    frames: list[tuple[pd.DataFrame, list[Any], str, int]] = []
    if isinstance(mini_batch, pd.DataFrame):
        # Tabular mode: the engine says which file each slice of rows came from, and where it starts.
        sources = mini_batch.attrs.get("batchnb_sources") or [("", 0, len(mini_batch))]
        start = 0
        for path, first_row, count in sources:
            frame = mini_batch.iloc[start : start + count]
            frames.append((frame, _as_values(model.predict(frame), len(frame)), os.path.basename(path), first_row))
            start += count
    else:
        for path in mini_batch:
            frame = _read(path)
            frames.append((frame, _as_values(model.predict(frame), len(frame)), os.path.basename(path), 0))
    if os.environ.get("BATCHNB_OUTPUT_FORMAT") == "parquet":
        return _table(frames)
    return _lines(frames)
