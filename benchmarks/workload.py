"""The benchmark's own workloads: Parquet inputs, MLflow models, tiny files, and a workspace that
deploys them. Everything is generated under one folder; nothing comes from the network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FEATURES = [f"f{i:02d}" for i in range(16)]
ROW_GROUP = 50_000


@dataclass
class Sizes:
    """How big each workload is. ``quick`` is seconds, for the smoke test."""

    files: int = 12  # the forest workload: Parquet files ...
    rows: int = 500_000  # ... of this many rows, 16 float columns
    trees: int = 40  # the random forest
    depth: int = 12
    mini_batch_rows: int = 100_000
    limit_files: int = 2  # the limit is measured on this many of the files
    agent_kill_s: float = 20.0  # the killed agent's job: about this long at the limit ...
    agent_kill_max_files: int = 48  # ... in this many files at most
    tiny_files: int = 10_000  # overhead workload
    memory_files: int = 1  # memory workload: this many files, then 10x as many
    memory_rows: int = 500_000
    recovery_files: int = 2
    crashes: int = 3  # recovery workload: mini-batches that kill their worker once
    storage_files: int = 2000  # remote file mode: CSV blobs in Azurite ...
    storage_file_kb: int = 64  # ... of this size
    storage_rows: int = 2_000_000  # remote tabular mode: one Parquet blob of this many rows ...
    storage_row_group: int = 50_000  # ... in row groups of this many (a mini-batch each)
    env_builds: int = 5  # environment builds timed, of each specification
    env_files: int = 400  # one-row files of the jobs of a deployment in an environment and one without

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            files=3,
            rows=20_000,
            trees=4,
            depth=4,
            mini_batch_rows=5_000,
            limit_files=1,
            agent_kill_s=1.0,
            agent_kill_max_files=3,
            tiny_files=200,
            memory_files=1,
            memory_rows=20_000,
            recovery_files=2,
            crashes=1,
            storage_files=24,
            storage_file_kb=4,
            storage_rows=40_000,
            storage_row_group=5_000,
            env_builds=2,
            env_files=20,
        )


def _frame(rows: int, seed: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)


def parquet_files(folder: Path, count: int, rows: int, seed: int = 0) -> list[Path]:
    """``count`` Parquet files of ``rows`` rows in row groups of 50k (made once, then reused)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"part-{i:04d}.parquet"
        if not path.exists():
            table = pa.Table.from_pandas(_frame(rows, seed + i), preserve_index=False)
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp, row_group_size=min(ROW_GROUP, rows))
            os.replace(tmp, path)
        paths.append(path)
    return paths


def tiny_files(folder: Path, count: int) -> Path:
    """``count`` one-row CSV files."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = folder / f"f{i:06d}.csv"
        if not path.exists():
            path.write_text(f"x\n{i}\n")
    return folder


def mlflow_model(folder: Path, kind: str, trees: int = 40, depth: int = 12) -> Path:
    """A model saved with MLflow (skops): ``forest`` (CPU-bound) or ``linear`` (I/O-bound)."""
    if (folder / "MLmodel").exists():
        return folder
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LinearRegression

    x = _frame(20_000, seed=12345)
    y = 2 * x.f00 - x.f01 * x.f02 + (x.f03 > 0)
    if kind == "forest":
        model: Any = RandomForestRegressor(n_estimators=trees, max_depth=depth, random_state=0, n_jobs=1).fit(x, y)
    else:
        model = LinearRegression().fit(x, y)
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    mlflow.sklearn.save_model(
        model,
        folder,
        signature=infer_signature(x.head(10), model.predict(x.head(10))),
        skops_trusted_types=trusted,
        pip_requirements=["scikit-learn"],  # inferring them would run the model in a subprocess
    )
    return folder


TRIVIAL_SCRIPT = "def init():\n    pass\n\n\ndef run(mini_batch):\n    return [1 for _ in mini_batch]\n"


def workspace(root: Path, compute: dict[str, Any] | None = None) -> Any:
    """A fresh batchnb workspace under ``root`` (a client on it)."""
    from batchnb import BatchClient

    client = BatchClient(root)
    if compute:
        client.computes.create_or_update(compute)
    return client


def deploy_mlflow(
    client: Any,
    model_dir: Path,
    endpoint: str,
    workers: int,
    mini_batch_rows: int,
    compute: str | None = None,
    code: Path | None = None,
    env: dict[str, str] | None = None,
    output_file_name: str | None = None,
) -> None:
    """An endpoint whose default deployment scores ``model_dir`` in tabular mode: with batchnb's
    MLflow driver, or with the scoring script ``code/score.py``; its output ``output_file_name``
    (a ``.parquet`` name: Parquet)."""
    name = endpoint.replace("ep-", "m-")
    client.models.create_or_update({"name": name, "type": "mlflow_model", "path": str(model_dir)}, trust_types=True)
    client.batch_endpoints.create_or_update({"name": endpoint})
    spec: dict[str, Any] = {
        "name": "main",
        "endpoint_name": endpoint,
        "model": f"azureml:{name}@latest",
        "settings": {
            "mini_batch_mode": "tabular",
            "mini_batch_size": mini_batch_rows,
            "max_concurrency_per_instance": workers,
            "error_threshold": 0,
            "environment_variables": env or {},
        },
    }
    if output_file_name:
        spec["settings"]["output_file_name"] = output_file_name
        # The baselines write the predictions alone: so does batchnb here (no lineage columns).
        spec["settings"]["lineage_columns"] = False
    if code:
        spec["code_configuration"] = {"code": str(code), "scoring_script": "score.py"}
    if compute:
        spec["compute"] = f"azureml:{compute}"
    client.batch_deployments.create_or_update(spec, set_default=True)


def deploy_trivial(
    client: Any,
    root: Path,
    endpoint: str,
    workers: int,
    mini_batch_size: int,
    compute: str | None = None,
    script: str = TRIVIAL_SCRIPT,
    settings: dict[str, Any] | None = None,
    environment: str | None = None,
) -> None:
    """An endpoint whose default deployment runs a scoring script with no model weights: by default
    one that returns one result per file; ``settings`` are added to the deployment's; in
    ``environment`` (an ``azureml:`` reference) if given."""
    code = root / f"code-{endpoint}"
    code.mkdir(parents=True, exist_ok=True)
    (code / "score.py").write_text(script)
    model = root / "empty-model"
    model.mkdir(exist_ok=True)
    (model / "README").write_text("no weights")
    client.models.create_or_update({"name": "empty", "path": str(model)})
    client.batch_endpoints.create_or_update({"name": endpoint})
    spec: dict[str, Any] = {
        "name": "main",
        "endpoint_name": endpoint,
        "model": "azureml:empty@latest",
        "code_configuration": {"code": str(code), "scoring_script": "score.py"},
        "settings": {"mini_batch_size": mini_batch_size, "max_concurrency_per_instance": workers, **(settings or {})},
    }
    if compute:
        spec["compute"] = f"azureml:{compute}"
    if environment:
        spec["environment"] = environment
    client.batch_deployments.create_or_update(spec, set_default=True)


# The forest workload's scoring script, as Azure's examples write one for an MLflow model: init()
# loads it with mlflow.pyfunc, run() predicts a tabular mini-batch. A warm worker keeps the module
# and runs init() again for each job: the model cache keyed by its path makes that cheap.
SCORE_SCRIPT = """
import glob, os
import mlflow.pyfunc
import pandas as pd

_models = {}


def init():
    global model
    found = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "MLmodel"), recursive=True)
    path = os.path.dirname(found[0])
    if path not in _models:
        _models[path] = mlflow.pyfunc.load_model(path)
    model = _models[path]


def run(mini_batch):
    return pd.DataFrame({"prediction": model.predict(mini_batch)})
"""


def deploy_scoring(
    client: Any, root: Path, model_dir: Path, endpoint: str, workers: int, mini_batch_rows: int, compute: str | None
) -> Path:
    """An endpoint whose scoring script loads ``model_dir`` with MLflow and writes one Parquet
    output. Returns the script's folder."""
    code = root / "code-score"
    code.mkdir(parents=True, exist_ok=True)
    (code / "score.py").write_text(SCORE_SCRIPT)
    deploy_mlflow(
        client,
        model_dir,
        endpoint,
        workers,
        mini_batch_rows,
        compute=compute,
        code=code,
        output_file_name="predictions.parquet",
    )
    return code


# An Azure-style scoring script for an MLflow model: init() loads it, run() predicts a tabular
# mini-batch. The first attempt of the first CRASHES mini-batches it sees takes its worker process
# down (SIGKILL, as a segfault in a native library would); their retries score normally.
CRASHING_SCRIPT = """
import glob, os, signal
import mlflow.pyfunc
import pandas as pd


def init():
    global model
    found = glob.glob(os.path.join(os.environ["AZUREML_MODEL_DIR"], "**", "MLmodel"), recursive=True)
    model = mlflow.pyfunc.load_model(os.path.dirname(found[0]))


def _crash_first_attempt(key):
    folder = os.environ["CRASH_DIR"]
    for slot in sorted(os.listdir(folder)):
        with open(os.path.join(folder, slot)) as fh:
            if fh.read() == key:
                return  # a retry of a mini-batch that crashed: score it
    for i in range(int(os.environ["CRASHES"])):
        try:
            fd = os.open(os.path.join(folder, f"slot-{i}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            continue
        os.write(fd, key.encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)


def run(mini_batch):
    _crash_first_attempt(repr(mini_batch.iloc[0, 0]))
    return pd.DataFrame({"prediction": model.predict(mini_batch)})
"""


def deploy_crashing(
    client: Any, root: Path, model_dir: Path, endpoint: str, workers: int, mini_batch_rows: int, crashes: int
) -> Path:
    """An endpoint whose scoring script loads ``model_dir`` with MLflow and crashes its worker on the
    first attempt of ``crashes`` mini-batches. Returns the folder to empty before each job."""
    code = root / f"code-{endpoint}"
    code.mkdir(parents=True, exist_ok=True)
    (code / "score.py").write_text(CRASHING_SCRIPT)
    crash_dir = root / f"crashes-{endpoint}"
    crash_dir.mkdir(exist_ok=True)
    env = {"CRASH_DIR": str(crash_dir), "CRASHES": str(crashes)}
    deploy_mlflow(client, model_dir, endpoint, workers, mini_batch_rows, code=code, env=env)
    return crash_dir
