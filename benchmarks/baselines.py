"""What a user would write instead of batchnb, and the limit that neither can pass.

* ``cold``: a fresh ``python`` process runs a ``joblib.Parallel(n_jobs=cores, backend="loky")``
  loop over the Parquet files (each task reads one file, predicts with the MLflow model, loaded
  once per worker process, and returns an Arrow table), and writes the predictions to one Parquet
  file with pyarrow: the same output as the batchnb job's (a ``prediction`` column), formatted as
  fast (Arrow, not Python strings);
* ``serve``: the same loop in a process kept alive, as a notebook's kernel is: it runs the loop
  once (untimed: loky's workers start and load the model) and says ``{"ready": true}``, then runs
  it once more for each ``run`` line on its stdin, answering each with one JSON line;
* ``limit``: one process runs the scoring work both ways, the deployment's scoring script over the
  mini-batches (planned and read by batchnb's own code) and the joblib task over whole files, each
  written to Parquet, and measures its own CPU time, every thread included, on two passes of each
  way in turn (A B B A, after an untimed one of each): the better of the two rates (over rounds,
  the better of their medians: see ``agent.limit_of``) is the rows per CPU-second of the scoring
  work alone, in a process as warm as any contender's. ``cores ×`` that is what any contender can
  reach at most.

Each prints ``{"rows": n, ...}`` as its last line (``serve``: per run).

    python benchmarks/baselines.py cold|serve --model DIR --out FILE --cores N FILE...
    python benchmarks/baselines.py limit --model DIR --code DIR --out FILE --batch-rows N FILE...
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# loky's workers stay up this long between two runs of the loop (joblib's default is 300 s): as
# long as the benchmark's warm compute keeps its agent, so warm is compared with warm.
IDLE_WORKER_TIMEOUT_S = 600


@functools.cache
def _model(path: str) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(path)


def score_file(model_dir: str, path: str) -> Any:
    """Read one Parquet file and predict it: an Arrow table of the predictions."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    frame = pd.read_parquet(path)
    predictions = _model(model_dir).predict(frame)
    return pa.table({"prediction": np.asarray(predictions, dtype=np.float64)})


def write_tables(tables: Iterable[Any], out: str) -> int:
    """Write Arrow tables, in order, to one Parquet file as they come. Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    writer = None
    try:
        for table in tables:
            if writer is None:  # encoded as batchnb encodes its output (see output.dictionary_columns)
                floats = [f.name for f in table.schema if pa.types.is_floating(f.type)]
                dictionary = [name for name in table.schema.names if name not in floats]
                writer = pq.ParquetWriter(out, table.schema, use_dictionary=dictionary)
            writer.write_table(table)
            rows += len(table)
    finally:
        if writer is not None:
            writer.close()
    return rows


def score_all(model_dir: str, files: list[str], out: str, cores: int) -> int:
    """The joblib loop: the files scored in parallel, written in order to one Parquet file."""
    from joblib import Parallel, delayed

    parallel = Parallel(n_jobs=cores, backend="loky", return_as="generator", idle_worker_timeout=IDLE_WORKER_TIMEOUT_S)
    return write_tables(parallel(delayed(score_file)(model_dir, f) for f in files), out)


def serve(model_dir: str, files: list[str], out: str, cores: int) -> None:
    score_all(model_dir, files, out, cores)  # the first run: loky's workers start, load the model
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            continue
        started = time.perf_counter()
        rows = score_all(model_dir, files, out, cores)
        print(json.dumps({"rows": rows, "loop_s": time.perf_counter() - started}), flush=True)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def limit(code_dir: str, model_dir: str, files: list[str], out: str, batch_rows: int) -> dict[str, Any]:
    """The most rows per CPU-second this one process scores, in its steady state, by either way of
    doing the work: the deployment's scoring script over the mini-batches (as batchnb runs it), and
    the joblib loop's task over whole files (as the baselines run it); neither contender can do
    better per CPU-second than the better of the two. Each way is timed on two passes over the
    files after an untimed one of both, so that what a fresh process pays once (the allocator
    growing its heap, lazy set-ups in the libraries) is not counted as scoring work."""
    import pyarrow as pa

    from batchnb.engine import planner, tabular

    os.environ["AZUREML_MODEL_DIR"] = model_dir
    sys.path.insert(0, code_dir)
    import score  # the deployment's scoring script

    score.init()
    # The mini-batches as batchnb plans them, each read by batchnb's own reader: what run() is given
    # in a job, made as cheaply as batchnb makes it.
    mini_batches = list(planner.plan_tabular_minibatches(files, batch_rows))
    ways = {
        "script": lambda: write_tables(
            (
                pa.Table.from_pandas(score.run(tabular.read_chunks(chunks)), preserve_index=False)
                for chunks in mini_batches
            ),
            out,
        ),
        "files": lambda: write_tables((score_file(model_dir, path) for path in files), out),
    }
    for one_pass in ways.values():
        one_pass()  # untimed
    # Timed in turn, A B B A: the process's heap and caches keep changing over its first passes,
    # and a way always timed first (or last) would be measured in a different process from the other.
    cpu = dict.fromkeys(ways, 0.0)
    done = dict.fromkeys(ways, 0)
    for name in [*ways, *reversed(ways)]:
        cpu0 = _cpu_s()
        done[name] += ways[name]()
        cpu[name] += _cpu_s() - cpu0
    figures = {f"{name}_rows_per_cpu_s": done[name] / cpu[name] for name in ways}
    best = max(figures.values())
    return {"rows": done["script"] // 2, **figures, "rows_per_cpu_s": best}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["cold", "serve", "limit"])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--code", help="limit: the folder of the scoring script score.py")
    parser.add_argument("--batch-rows", type=int, default=100_000, help="limit: rows per mini-batch")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    # Run this file's functions from its module, not from __main__, so loky's workers import them by
    # name (and keep the cached model per worker) instead of unpickling copies.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, here)
    import baselines

    if args.kind == "limit":
        figures = baselines.limit(args.code, args.model, args.files, args.out, args.batch_rows)
        print(json.dumps(figures), flush=True)
    elif args.kind == "serve":
        baselines.serve(args.model, args.files, args.out, args.cores)
    else:
        started = time.perf_counter()
        rows = baselines.score_all(args.model, args.files, args.out, args.cores)
        print(json.dumps({"rows": rows, "loop_s": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
