"""Compare two deployments: score one input with both, join their outputs row by row, report.

``batchnb batch-endpoint compare -n E --deployments A B --input X [--sample N]``:

1. With ``--sample N``, the input is cut to its first N items (files in file mode, rows in tabular
   mode, by deployment A's mode), copied into a folder of the workspace's cache, so that both
   deployments score the very same files.
2. Each deployment scores it in a job of its own, one after the other (so that each job has the
   machine to itself and their throughputs compare), writing Parquet with the lineage columns
   (``--set output_file_name=compare.parquet lineage_columns=true``) into the cache.
3. The two outputs are joined on their lineage: the source file, the row in it, and the row's
   place among the rows of that file and row (for a file scored as one item, the file alone).
4. For every column both outputs have (the lineage columns aside): the share of rows where the
   two values are equal, and for numbers the mean and largest absolute difference. A row agrees
   when every such column is equal; ``agreement`` is the share of joined rows that agree. The
   disagreements are listed as (row, column, A's value, B's value), rows found in only one output
   too; and each job's throughput.
5. For the chart of each column: numbers get a histogram of the absolute differences (``HIST_BINS``
   bins from 0 to the largest), other values the counts of their (A, B) pairs, most frequent
   first (``MAX_PAIRS`` of them), a confusion matrix laid out as bars.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cloud.fs import download
from ..confine import allowing
from ..display import error_summary
from ..entities import Entity
from ..errors import JobFailedError, ValidationError
from . import planner, state, tabular
from .invoke import resolve_input

if TYPE_CHECKING:
    from ..client import BatchClient

OUTPUT_FILE = "compare.parquet"
_KEY = ["_source_file", "_source_row", "_occurrence"]
HIST_BINS = 10
MAX_PAIRS = 12


class Comparison(Entity):
    """The result of comparing two deployments; shown in a notebook as a card with a chart."""

    kind = "comparison"

    def __repr__(self) -> str:
        from ..comparison_display import comparison_text

        return comparison_text(self)

    def _repr_html_(self) -> str:
        from ..comparison_display import comparison_html

        return comparison_html(self)


def _sample_input(
    inp: dict[str, Any], mode: str, recursive: bool, n: int, folder: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of the first ``n`` items of the input in ``folder`` (files, or rows: in tabular mode
    one Parquet file per source file, with its first rows), and each copy's original path."""
    if n < 1:
        raise ValidationError(f"--sample {n}: give a number of items of at least 1", field="sample")
    files = planner.list_input_files(inp["path"], inp["type"], recursive)
    folder.mkdir(parents=True, exist_ok=True)
    originals: dict[str, str] = {}
    if mode != "tabular":
        local = download(files[:n], folder.parent / "download")
        for i, (path, fetched) in enumerate(zip(files[:n], local, strict=True)):
            # Numbered, so that files of one name in different sub-folders stay apart, in input order.
            copy = folder / f"{i:06d}-{Path(path).name}"
            shutil.copyfile(fetched, copy)
            originals[str(copy)] = path
    else:
        left = n
        for i, path in enumerate(files):
            if left <= 0:
                break
            chunks = next(planner.plan_tabular_minibatches([path], 1 << 30))
            frame = tabular.read_chunks(chunks).head(left)
            frame.attrs.clear()
            copy = folder / f"{i:06d}-{Path(path).stem}.parquet"
            frame.to_parquet(copy, index=False)
            originals[str(copy)] = path
            left -= len(frame)
    return {"given": str(folder), "path": str(folder), "type": "uri_folder"}, originals


def _run(
    client: BatchClient,
    endpoint: str,
    deployment: str,
    inp: dict[str, Any],
    out: Path,
    timeout: float | None,
    on_job: Callable[[str, Any], None] | None,
) -> Any:
    job = client.jobs.invoke(
        endpoint,
        deployment,
        input=inp["path"],
        input_type=inp["type"],
        output_path=str(out),
        set_values=[f"output_file_name={OUTPUT_FILE}", "lineage_columns=true"],
    )
    if on_job is not None:
        on_job(deployment, job)
    job = client.jobs.wait(job["name"], timeout=timeout)
    if job["status"] != state.COMPLETED:
        why = error_summary(job.get("error")) or "see its logs"  # with the exception: the first line may not say why
        raise JobFailedError(f"deployment {deployment}'s job {job['name']} ended {job['status']}: {why}")
    return job


def _keyed(path: Path) -> Any:
    import pandas as pd

    frame = pd.read_parquet(path)
    for column in ("_source_file", "_source_row"):
        if column not in frame.columns:
            frame[column] = None
    frame["_source_file"] = frame["_source_file"].astype("string").fillna("")
    frame["_source_row"] = pd.to_numeric(frame["_source_row"]).astype("Int64").fillna(-1)
    frame["_occurrence"] = frame.groupby(["_source_file", "_source_row"], sort=False).cumcount()
    return frame.drop(columns=["_mini_batch"], errors="ignore")


def _value(v: Any) -> Any:
    """A JSON-ready value: numpy scalars made Python ones, missing values None."""
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _equal(a: Any, b: Any) -> Any:
    import pandas as pd

    both_missing = a.isna().to_numpy() & b.isna().to_numpy()
    try:
        same = (a == b).fillna(False).to_numpy(dtype=bool)
    except TypeError:  # values that do not compare as arrays (lists, dicts): compare as objects
        same = pd.Series([x == y for x, y in zip(a, b, strict=True)]).to_numpy(dtype=bool)
    return same | both_missing


def _is_number(series: Any) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def _histogram(diff: Any) -> dict[str, Any]:
    """The differing rows' absolute differences in ``HIST_BINS`` bins from 0 to the largest (their
    edges and row counts); ``zero``: the rows whose values are equal, left out of the bins."""
    import numpy as np

    nonzero = diff[diff > 0]
    top = float(nonzero.max()) if len(nonzero) else 1.0
    counts, edges = np.histogram(nonzero, bins=HIST_BINS, range=(0.0, top))
    return {
        "zero": int(len(diff) - len(nonzero)),
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
    }


def _pairs(left: Any, right: Any) -> list[dict[str, Any]]:
    """The most frequent (A, B) value pairs of a column of labels, with their row counts."""
    import pandas as pd

    shown = pd.DataFrame(
        {
            "a": left.astype("string").fillna("(none)").to_numpy(),
            "b": right.astype("string").fillna("(none)").to_numpy(),
        }
    )
    counted = shown.value_counts(sort=True).head(MAX_PAIRS)
    return [{"a": str(a), "b": str(b), "rows": int(n)} for (a, b), n in counted.items()]


def compare_outputs(
    path_a: Path, path_b: Path, names: tuple[str, str], max_disagreements: int, originals: dict[str, str] | None = None
) -> dict[str, Any]:
    """Join two outputs with lineage columns and measure how they agree (see the module's docstring);
    ``originals`` maps the files of a sampled input back to the files they were copied from."""
    import numpy as np

    a, b = _keyed(path_a), _keyed(path_b)
    joined = a.merge(b, on=_KEY, how="outer", suffixes=("__a", "__b"), indicator=True, sort=False)
    both = joined["_merge"] == "both"
    columns = [c for c in a.columns if c not in _KEY and c in b.columns]
    stats: dict[str, Any] = {}
    row_ok = both.to_numpy().copy()
    differs: dict[str, Any] = {}
    for col in columns:
        left, right = joined.loc[both, f"{col}__a"], joined.loc[both, f"{col}__b"]
        eq = _equal(left, right)
        entry: dict[str, Any] = {"equal": round(float(eq.mean()), 6) if len(eq) else 1.0}
        if _is_number(left) and _is_number(right) and len(eq):
            diff = np.abs(left.astype("float64").to_numpy() - right.astype("float64").to_numpy())
            diff = diff[~np.isnan(diff)]
            entry["mean_abs_diff"] = float(diff.mean()) if len(diff) else 0.0
            entry["max_abs_diff"] = float(diff.max()) if len(diff) else 0.0
            entry["histogram"] = _histogram(diff)
        elif len(eq):
            entry["pairs"] = _pairs(left, right)
        stats[col] = entry
        mask = np.zeros(len(joined), dtype=bool)
        mask[np.flatnonzero(both.to_numpy())[~eq]] = True
        differs[col] = mask
        row_ok &= ~mask
    disagreements: list[dict[str, Any]] = []
    disagreeing = np.flatnonzero(~row_ok)
    for i in disagreeing:
        if len(disagreements) >= max_disagreements:
            break  # every one is counted; only the first are listed
        row = joined.iloc[i]
        where = {
            "source_file": (originals or {}).get(row["_source_file"], row["_source_file"]) or None,
            "source_row": None if int(row["_source_row"]) < 0 else int(row["_source_row"]),
        }
        if row["_merge"] != "both":
            side = names[0] if row["_merge"] == "left_only" else names[1]
            found = [{**where, "column": "(row)", names[0]: None, names[1]: None}]
            found[0][side] = "present"
        else:
            found = [
                {**where, "column": col, names[0]: _value(row[f"{col}__a"]), names[1]: _value(row[f"{col}__b"])}
                for col in columns
                if differs[col][i]
            ]
        disagreements += found[: max_disagreements - len(disagreements)]
    matched = int(both.sum())
    return {
        "rows": {
            names[0]: len(a),
            names[1]: len(b),
            "joined": matched,
            f"only_{names[0]}": int((joined["_merge"] == "left_only").sum()),
            f"only_{names[1]}": int((joined["_merge"] == "right_only").sum()),
        },
        "agreement": round(float(row_ok[both.to_numpy()].mean()), 6) if matched else 0.0,
        "columns": stats,
        "columns_only_in": {
            names[0]: [c for c in a.columns if c not in b.columns],
            names[1]: [c for c in b.columns if c not in a.columns],
        },
        "rows_disagreeing": len(disagreeing),
        "disagreements": disagreements,
    }


def _throughput(job: Any) -> dict[str, Any]:
    p = job["progress"]
    elapsed = float(p.get("elapsed_s") or 0.0)
    items = int(p["items"]["succeeded"])
    return {
        "job": job["name"],
        "items": items,
        "rows": int(p["rows_written"]),
        "elapsed_s": round(elapsed, 3),
        "items_per_second": round(items / elapsed, 2) if elapsed > 0 else None,
        "rows_per_second": p.get("rows_per_second"),
    }


def compare(
    client: BatchClient,
    endpoint: str,
    deployments: list[str] | tuple[str, str],
    *,
    input: str | dict[str, Any],
    input_type: str | None = None,
    sample: int | None = None,
    max_disagreements: int = 50,
    timeout: float | None = None,
    base_dir: Path | None = None,
    on_job: Callable[[str, Any], None] | None = None,
) -> Comparison:
    """Score ``input`` with two deployments of ``endpoint`` and compare the outputs row by row.

    Args:
        client: The workspace.
        endpoint: The endpoint.
        deployments: The two deployments, A and B.
        input: The input, as ``invoke`` takes it.
        input_type: ``uri_folder`` or ``uri_file``; inferred for a local path.
        sample: Score only the first ``sample`` items (files, or rows in tabular mode).
        max_disagreements: How many disagreements to list (all are counted).
        timeout: Seconds to wait for each job (None: no limit).
        base_dir: Where a relative input path resolves.
        on_job: Called with each deployment's name and its job as soon as the job is invoked (a
            front end follows it).

    Returns:
        The :class:`Comparison`.

    Raises:
        ValidationError: Not two different model deployments with ``append_row`` output, or a bad input.
        JobFailedError: A job did not complete (its name and error are said).
    """
    names = tuple(deployments)
    if len(names) != 2 or names[0] == names[1]:
        raise ValidationError(
            f"--deployments: name two different deployments (got {' '.join(names)})", field="deployments"
        )
    found = [client.batch_deployments.get(name, endpoint) for name in names]
    for dep in found:
        if dep.get("type", "model") != "model" or (dep.get("settings") or {}).get("output_action") == "summary_only":
            raise ValidationError(
                f"deployment {dep['name']} writes no output rows to compare (only model deployments with "
                "output_action: append_row can be compared)",
                field="deployments",
            )
    given = inp = resolve_input(client, input, input_type, base_dir)
    settings = found[0].get("settings") or {}
    work = client.workspace.cache_dir / "compare" / uuid.uuid4().hex[:12]
    originals: dict[str, str] = {}
    # The scratch folder is the workspace's own, chosen here: a server that confines the paths its
    # callers name (the input was checked above) lets the comparison write and read there.
    with allowing(work):
        if sample is not None:
            mode, recursive = settings.get("mini_batch_mode", "file"), bool(settings.get("recursive"))
            inp, originals = _sample_input(inp, mode, recursive, sample, work / "input")
        jobs = [_run(client, endpoint, name, inp, work / name, timeout, on_job) for name in names]
    outputs = [work / name / OUTPUT_FILE for name in names]
    result = compare_outputs(outputs[0], outputs[1], (names[0], names[1]), max_disagreements, originals)
    return Comparison(
        {
            "endpoint": endpoint,
            "deployments": list(names),
            "input": given["path"],
            "sample": sample,
            **result,
            "throughput": {name: _throughput(job) for name, job in zip(names, jobs, strict=True)},
            "outputs": {name: str(path) for name, path in zip(names, outputs, strict=True)},
        }
    )
