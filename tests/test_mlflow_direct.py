"""The built-in driver's direct path: scikit-learn models saved by MLflow, loaded and scored without
importing MLflow, must predict what ``mlflow.pyfunc`` predicts, fail where it fails, and leave
anything it does not fully understand to MLflow. Skops-saved models are cached as a pickle in the
workspace, rebuilt when the cache entry is unreadable.

The models are trained here and saved with MLflow under a temporary folder (skops, pickle and
cloudpickle); nothing comes from the network.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from engine_helpers import output_file, reaping

from batchnb import BatchClient

mlflow = pytest.importorskip("mlflow")
skops_io = pytest.importorskip("skops.io")
sklearn_ensemble = pytest.importorskip("sklearn.ensemble")
sklearn_linear = pytest.importorskip("sklearn.linear_model")

from batchnb.engine.drivers import read_mlmodel, sklearn_direct  # noqa: E402

FEATURES = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    with reaping():
        yield


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 3)).round(4), columns=FEATURES)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A forest regressor saved with skops, a logistic regression saved with pickle and with
    cloudpickle (predict_proba as its pyfunc predict function), each with a column signature."""
    from mlflow.models import infer_signature

    root = tmp_path_factory.mktemp("direct")
    x = _frame(400, seed=0)
    forest = sklearn_ensemble.RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0)
    forest.fit(x, x.a * 2 - x.b * x.c)
    logistic = sklearn_linear.LogisticRegression().fit(x, (x.a + x.b > 0).astype(int))
    types = skops_io.get_untrusted_types(data=skops_io.dumps(forest))
    saved = {}
    for name, model, fmt, extra in (
        ("forest", forest, "skops", {"skops_trusted_types": types}),
        ("lr-pickle", logistic, "pickle", {}),
        ("lr-cloudpickle", logistic, "cloudpickle", {"pyfunc_predict_fn": "predict_proba"}),
    ):
        folder = root / name
        predict = getattr(model, extra.get("pyfunc_predict_fn", "predict"))
        mlflow.sklearn.save_model(
            model,
            folder,
            serialization_format=fmt,
            signature=infer_signature(x.head(5), predict(x.head(5))),
            pip_requirements=["scikit-learn"],
            **extra,
        )
        saved[name] = folder
    folders = {name.replace("-", "_"): folder for name, folder in saved.items()}
    return SimpleNamespace(root=root, estimator=forest, **folders)


def _direct(folder: Path, cache: Path | None = None) -> sklearn_direct.DirectModel:
    plan = sklearn_direct.plan(folder, read_mlmodel(folder))
    assert isinstance(plan, sklearn_direct.Plan), plan
    estimator, _ = sklearn_direct.load_estimator(plan, str(cache) if cache else None)
    return sklearn_direct.DirectModel(folder, plan, estimator)


def _inputs() -> dict[str, pd.DataFrame]:
    base = _frame(50, seed=1)
    return {
        "exact": base,
        "reordered": base[["c", "a", "b"]],
        "extra column": base.assign(id=[f"r{i}" for i in range(50)]),
        "float32 columns": base.astype(np.float32),
        "int columns": (base * 10).round().astype(np.int64),
    }


@pytest.mark.parametrize("name", ["forest", "lr_pickle", "lr_cloudpickle"])
def test_the_direct_path_predicts_what_mlflow_predicts(models: SimpleNamespace, name: str, tmp_path: Path) -> None:
    folder = getattr(models, name)
    direct = _direct(folder, tmp_path / "cache")
    reference = mlflow.pyfunc.load_model(str(folder))
    for label, frame in _inputs().items():
        try:
            expected = reference.predict(frame)
        except Exception as exc:  # MLflow refuses int columns for a double signature: so must we
            with pytest.raises(type(exc)) as raised:
                direct.predict(frame)
            assert str(raised.value) == str(exc), label
            continue
        np.testing.assert_array_equal(np.asarray(direct.predict(frame)), np.asarray(expected), err_msg=label)
    # Only inputs MLflow would change went through it (loaded then, once).
    assert direct._pyfunc is not None


def test_inputs_that_satisfy_the_signature_never_load_mlflow(models: SimpleNamespace) -> None:
    direct = _direct(models.forest)
    for label in ("exact", "reordered", "extra column"):
        frame = _inputs()[label]
        np.testing.assert_array_equal(direct.predict(frame), models.estimator.predict(frame[FEATURES]), err_msg=label)
    assert direct._pyfunc is None


def test_a_missing_column_fails_with_mlflows_own_error(models: SimpleNamespace) -> None:
    direct = _direct(models.forest)
    frame = _frame(5, seed=2)[["a", "b"]]
    with pytest.raises(mlflow.exceptions.MlflowException) as direct_error:
        direct.predict(frame)
    with pytest.raises(mlflow.exceptions.MlflowException) as mlflow_error:
        mlflow.pyfunc.load_model(str(models.forest)).predict(frame)
    assert str(direct_error.value) == str(mlflow_error.value)
    assert "missing inputs ['c']" in str(direct_error.value)


def test_loading_the_driver_imports_neither_mlflow_nor_skops_once_the_model_is_cached(
    models: SimpleNamespace, tmp_path: Path
) -> None:
    """In a clean interpreter, as a cold job's worker: the first init() loads with skops and caches
    the forest; the second loads the cache, with no mlflow and no skops imported."""
    probe = (
        "import json, os, sys, logging\n"
        "logging.basicConfig(level='INFO', stream=sys.stderr)\n"
        "from batchnb.engine.drivers import mlflow_score\n"
        "mlflow_score.init()\n"
        "print(json.dumps({'mlflow': 'mlflow' in sys.modules, 'skops': 'skops' in sys.modules}))\n"
    )
    env = {**os.environ, "AZUREML_MODEL_DIR": str(models.forest), "BATCHNB_CACHE_DIR": str(tmp_path / "cache")}
    runs = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first, second = (json.loads(run.stdout.splitlines()[-1]) for run in runs)
    assert "loaded from skops without MLflow" in runs[0].stderr
    assert first == {"mlflow": False, "skops": True}
    assert "loaded from cache without MLflow" in runs[1].stderr
    assert second == {"mlflow": False, "skops": False}
    [cached] = (tmp_path / "cache" / "sklearn").iterdir()
    assert cached.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache" / "sklearn").stat().st_mode & 0o777 == 0o700


def test_an_unreadable_cache_entry_is_replaced_and_scores_the_same(models: SimpleNamespace, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _direct(models.forest, cache)
    [entry] = (cache / "sklearn").iterdir()
    entry.write_bytes(b"not a pickle")
    again = _direct(models.forest, cache)  # warns, loads with skops, caches it anew
    assert entry.read_bytes() != b"not a pickle"
    frame = _frame(20, seed=3)
    np.testing.assert_array_equal(again.predict(frame), first.predict(frame))
    plan = again.plan
    assert sklearn_direct.load_estimator(plan, str(cache))[1] == "cache"


def test_the_cache_key_follows_the_model_file_and_the_trusted_types(models: SimpleNamespace, tmp_path: Path) -> None:
    plan = sklearn_direct.plan(models.forest, read_mlmodel(models.forest))
    assert isinstance(plan, sklearn_direct.Plan)
    copy = tmp_path / "model.skops"
    copy.write_bytes(plan.model_file.read_bytes())
    same = sklearn_direct.Plan(copy, plan.serialization_format, plan.trusted, plan.predict_fn, plan.columns)
    assert sklearn_direct.cache_key(same) == sklearn_direct.cache_key(plan)
    fewer = sklearn_direct.Plan(copy, plan.serialization_format, (), plan.predict_fn, plan.columns)
    assert sklearn_direct.cache_key(fewer) != sklearn_direct.cache_key(plan)
    copy.write_bytes(plan.model_file.read_bytes() + b"\0")
    assert sklearn_direct.cache_key(same) != sklearn_direct.cache_key(plan)


def _mlmodel_with(folder: Path, edit: Any) -> dict[str, Any]:
    data = yaml.safe_load((folder / "MLmodel").read_text())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda m: m["flavors"]["python_function"].update(loader_module="mlflow.pyfunc.model"), "not a scikit-learn"),
        (lambda m: m["flavors"]["python_function"].update(code="code"), "code paths"),
        (lambda m: m["flavors"]["sklearn"].update(serialization_format="joblib"), "serialization format"),
        (lambda m: m["flavors"]["python_function"].update(predict_fn="transform"), "predict function"),
        (lambda m: m["signature"].update(params='[{"name": "k", "type": "long", "default": 1}]'), "params"),
        (lambda m: m["signature"].update(inputs='[{"type": "tensor", "tensor-spec": {}}]'), "without column names"),
        (lambda m: m["signature"].update(inputs='[{"type": "string", "name": "a"}]'), "of type 'string'"),
        (lambda m: m["signature"].update(inputs='[{"type": "double", "name": "a", "required": false}]'), "optional"),
        (lambda m: m["signature"].update(inputs="[{not json"), "cannot read"),
        (lambda m: m["signature"].update(inputs="[]"), "without inputs"),
    ],
)
def test_a_model_the_direct_path_does_not_fully_understand_goes_to_mlflow(
    models: SimpleNamespace, edit: Any, reason: str
) -> None:
    result = sklearn_direct.plan(models.forest, _mlmodel_with(models.forest, edit))
    assert isinstance(result, str) and reason in result


def test_the_direct_path_can_be_turned_off_and_follows_mlflows_deserialization_switch(
    models: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlmodel = read_mlmodel(models.forest)
    monkeypatch.setenv("BATCHNB_MLFLOW_DIRECT", "0")
    assert "BATCHNB_MLFLOW_DIRECT" in str(sklearn_direct.plan(models.forest, mlmodel))
    monkeypatch.delenv("BATCHNB_MLFLOW_DIRECT")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in str(sklearn_direct.plan(models.forest, mlmodel))


def _deploy(client: BatchClient, folder: Path, endpoint: str, **env: str) -> None:
    client.models.create_or_update({"name": "forest", "path": str(folder), "type": "mlflow_model"}, trust_types=True)
    client.batch_endpoints.create_or_update({"name": endpoint})
    settings = {"mini_batch_mode": "tabular", "mini_batch_size": 40, "environment_variables": env}
    client.batch_deployments.create_or_update(
        {"name": "blue", "endpoint_name": endpoint, "model": "azureml:forest@latest", "settings": settings},
        set_default=True,
    )


def test_jobs_score_the_same_output_with_and_without_mlflow_and_the_second_loads_the_cache(
    client: BatchClient, models: SimpleNamespace, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _frame(100, seed=4).to_parquet(data / "a.parquet", index=False)
    (_frame(30, seed=5) * 1e-5).to_csv(data / "b.csv", index=False)  # tiny predictions: exponents
    _deploy(client, models.forest, "ep-direct")
    _deploy(client, models.forest, "ep-mlflow", BATCHNB_MLFLOW_DIRECT="0")
    jobs = [client.batch_endpoints.invoke(ep, input=str(data)).wait(timeout=120) for ep in ("ep-direct", "ep-mlflow")]
    jobs.append(client.batch_endpoints.invoke("ep-direct", input=str(data)).wait(timeout=120))
    for job in jobs:
        assert job.status == "Completed", job.error
    direct, through_mlflow, cached = (output_file(job).read_bytes() for job in jobs)
    assert direct == through_mlflow == cached
    expected = [
        f"{i},{p},{name}"
        for name, frame in (("a.parquet", pd.read_parquet(data / "a.parquet")), ("b.csv", pd.read_csv(data / "b.csv")))
        for i, p in enumerate(models.estimator.predict(frame).astype(str).tolist())
    ]
    assert direct.decode().splitlines() == expected

    assert "loaded from skops without MLflow" in worker_logs(jobs[0])
    assert "loaded with mlflow.pyfunc (BATCHNB_MLFLOW_DIRECT is off)" in worker_logs(jobs[1])
    assert "loaded from cache without MLflow" in worker_logs(jobs[2])
    assert [p.parent for p in (client.workspace.cache_dir / "sklearn").iterdir()] == [
        client.workspace.cache_dir / "sklearn"
    ]


def worker_logs(job: Any) -> str:
    """What the job's workers printed (the driver's init() logs where the model was loaded)."""
    stdout = Path(job["logs_dir"]) / "user" / "stdout"
    return "".join(p.read_text() for p in sorted(stdout.glob("process*.stdout.txt")))


class _Plant:
    """Unpickled, it creates the file ``marker``: what a pickle planted by another user could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _plant(entry: Path, marker: Path, untrusted: str) -> None:
    """Put a pickle that creates ``marker`` in the place of the cache ``entry``, made ``untrusted``."""
    entry.unlink(missing_ok=True)
    fd = os.open(entry, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pickle.dumps(_Plant(marker)))
    entry.parent.chmod(0o700)
    if untrusted == "file mode 0666":
        entry.chmod(0o666)
    elif untrusted == "file owned by another user":
        os.chown(entry, 65534, 65534)
    elif untrusted == "folder mode 0777":
        entry.parent.chmod(0o777)


UNTRUSTED = {
    "file mode 0666": "the file is writable by other users (mode 666)",
    "file owned by another user": "the file is owned by uid 65534",
    "folder mode 0777": "is writable by other users (mode 777)",
}


def _needs_root(untrusted: str) -> None:
    if "another user" in untrusted and os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")


def test_a_cache_entry_is_unpickled_only_if_no_other_user_could_have_written_it(
    models: SimpleNamespace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    reference = _direct(models.forest, cache)
    [entry] = (cache / "sklearn").iterdir()
    frame = _frame(20, seed=6)
    # The planted pickle does run when the entry is the user's own (so it is a real test below);
    # it gives no estimator, so the model is loaded with skops all the same.
    marker = tmp_path / "ran"
    _plant(entry, marker, untrusted="")
    assert sklearn_direct.load_estimator(reference.plan, str(cache))[1] == "skops"
    assert marker.exists()
    for untrusted, why in UNTRUSTED.items():
        if "another user" in untrusted and os.getuid() != 0:
            continue
        marker = tmp_path / f"ran-{untrusted.replace(' ', '-')}"
        _plant(entry, marker, untrusted)
        caplog.clear()
        estimator, how = sklearn_direct.load_estimator(reference.plan, str(cache))
        assert not marker.exists(), untrusted
        assert how == "skops", untrusted
        np.testing.assert_array_equal(estimator.predict(frame), reference.predict(frame))
        [line] = [r.getMessage() for r in caplog.records if "not loading the cached model" in r.getMessage()]
        assert why in line and line.endswith("loading the model with skops"), line
    # Each skops load cached the model anew, the user's own: the next load takes it.
    (cache / "sklearn").chmod(0o700)
    assert sklearn_direct.load_estimator(reference.plan, str(cache))[1] == "cache"


@pytest.mark.parametrize("untrusted", ["file mode 0666", "file owned by another user"])
def test_a_job_ignores_a_cache_entry_another_user_could_have_written(
    client: BatchClient, models: SimpleNamespace, tmp_path: Path, untrusted: str
) -> None:
    _needs_root(untrusted)
    data = tmp_path / "data"
    data.mkdir()
    _frame(60, seed=7).to_parquet(data / "a.parquet", index=False)
    _deploy(client, models.forest, "ep-direct")
    first = client.batch_endpoints.invoke("ep-direct", input=str(data)).wait(timeout=120)
    assert first.status == "Completed", first.error
    [entry] = (client.workspace.cache_dir / "sklearn").iterdir()
    marker = tmp_path / "ran"
    _plant(entry, marker, untrusted)

    job = client.batch_endpoints.invoke("ep-direct", input=str(data)).wait(timeout=120)
    assert job.status == "Completed", job.error
    assert not marker.exists()
    assert output_file(job).read_bytes() == output_file(first).read_bytes()
    log = worker_logs(job)
    [line, *_] = [line for line in log.splitlines() if "not loading the cached model" in line]
    assert UNTRUSTED[untrusted] in line
    assert "loaded from skops without MLflow" in log
