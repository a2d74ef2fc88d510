"""What a user would write instead of batchnb, run as a fresh process each time (as a job is):

* ``single``: one process reads, predicts and writes each file;
* ``joblib``: ``joblib.Parallel(n_jobs=cores, backend="loky")`` over the files, the model loaded
  once per worker process (an lru_cache), each task reading, predicting and writing one file;
* ``ray``: Ray Data, ``read_parquet`` → ``map_batches`` with one model actor per core → ``write_csv``.

Each writes what batchnb's MLflow driver writes (``row,prediction,file_name`` lines, one output per
input file) and prints ``{"rows": n, "wall_s": t}`` as its last line.

    python benchmarks/baselines.py single|joblib|ray --model DIR --out DIR --cores N FILE...
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


@functools.lru_cache(maxsize=1)
def _model(path: str) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(path)


def _lines(predictions: Any, name: str, first_row: int = 0) -> str:
    import numpy as np

    shown = np.asarray(predictions, dtype=np.float64).astype(str).tolist()
    return "".join(f"{first_row + i},{value},{name}\n" for i, value in enumerate(shown))


def score_file(model_dir: str, path: str, out_dir: str) -> int:
    """Read one Parquet file, predict, write its lines; return the rows scored."""
    import pandas as pd

    frame = pd.read_parquet(path)
    text = _lines(_model(model_dir).predict(frame), os.path.basename(path))
    target = Path(out_dir) / (Path(path).stem + ".csv")
    target.write_text(text)
    return len(frame)


def run_single(model_dir: str, files: list[str], out_dir: str, cores: int) -> int:
    return sum(score_file(model_dir, f, out_dir) for f in files)


def run_joblib(model_dir: str, files: list[str], out_dir: str, cores: int) -> int:
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=cores, backend="loky")(delayed(score_file)(model_dir, f, out_dir) for f in files)
    return sum(results)


class _RayPredictor:
    def __init__(self, model_dir: str) -> None:
        self.model = _model(model_dir)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        predictions = self.model.predict(batch.drop(columns=["path"]))
        return pd.DataFrame({"prediction": predictions, "file_name": batch["path"].map(os.path.basename)})


def run_ray(model_dir: str, files: list[str], out_dir: str, cores: int) -> int:
    import ray

    # One CPU slot more than the actors: the read and write tasks need one, or the pipeline stalls.
    ray.init(num_cpus=cores + 1, include_dashboard=False, log_to_driver=False, object_store_memory=2 << 30)
    try:
        ds = ray.data.read_parquet(files, include_paths=True)
        scored = ds.map_batches(
            _RayPredictor,
            fn_constructor_kwargs={"model_dir": model_dir},
            batch_format="pandas",
            batch_size=50_000,
            concurrency=cores,
            num_cpus=1,
        )
        scored.write_csv(out_dir)
    finally:
        ray.shutdown()
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


RUNNERS = {"single": run_single, "joblib": run_joblib, "ray": run_ray}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=sorted(RUNNERS))
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    started = time.perf_counter()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    # Run this file's functions from its module, not from __main__, so loky's workers import them by
    # name (and keep the lru_cache'd model per worker) instead of unpickling copies.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, here)
    import baselines

    rows = baselines.RUNNERS[args.kind](args.model, args.files, args.out, args.cores)
    print(json.dumps({"rows": rows, "wall_s": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    main()
