"""MLflow models in the registry: fetching ``runs:/`` and ``models:/`` URIs, checking flavors, and the
trust decision for skops-serialized scikit-learn models.

MLflow is imported only here and only when a URI must be resolved; checking a local MLflow model
folder reads its ``MLmodel`` YAML and needs no MLflow at all.

Trust policy (MLflow 3 saves scikit-learn models with skops by default, and skops refuses to load
types outside its default allow-list): registering a model is the act of trusting it, but only for
what the user saw. At registration we list every type the model file needs beyond skops's defaults.
The ``skops_trusted_types`` that the model's own ``MLmodel`` may already declare are *not* taken on
trust: they travel with the artifact, so a crafted model could declare anything (MLflow's own loader
warns of exactly this). If the file needs no such type, nothing changes. If it needs some,
registration is refused with the list, unless the caller passes ``trust_types=True``
(``--trust-types`` on the CLI); then the workspace's copy of ``MLmodel`` records exactly those types
in ``skops_trusted_types`` and the model record keeps the list, so a reviewer can always see what
was trusted and when.

Models serialized with pickle or cloudpickle cannot be inspected: registering one trusts it, as
MLflow does by default (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``); the record names the format.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from ..errors import MissingDependencyError, ValidationError
from ..specfile import load_yaml

MLFLOW_URI_PREFIXES = ("runs:/", "models:/")


def is_mlflow_uri(path: str) -> bool:
    """True for ``runs:/<run>/<path>`` and ``models:/<name>/<version>`` / ``models:/<name>@<alias>``."""
    return path.startswith(MLFLOW_URI_PREFIXES)


def redact_uri(uri: str) -> str:
    """``uri`` without a password, for messages and logs (``https://user:***@host``)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependencyError(
            "MLflow is not installed: pip install 'batchnb[mlflow]' to use MLflow models"
        ) from None
    return mlflow


def _configured_tracking_uri(mlflow: Any, uri: str) -> str:
    """The tracking URI to resolve ``uri`` against: the one the user configured, else MLflow's default,
    but only if that default store exists (resolving against it would create an empty database)."""
    if mlflow.is_tracking_uri_set():
        return str(mlflow.get_tracking_uri())
    default = str(mlflow.get_tracking_uri())
    if default.startswith("sqlite:///"):
        path = Path(default.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ValidationError(
                f"model path {uri!r}: no MLflow tracking URI is configured (set MLFLOW_TRACKING_URI or call "
                f"mlflow.set_tracking_uri), and MLflow's default store {path} does not exist",
                field="path",
            )
    return default


def _folder_name(uri: str) -> str:
    """The name the model folder gets in the workspace: the artifact path's last part for ``runs:/``
    (``runs:/<id>/model`` gives ``model``), ``model`` for ``models:/``."""
    if uri.startswith("runs:/"):
        parts = [p for p in uri.removeprefix("runs:/").split("/") if p]
        if len(parts) >= 2:
            return parts[-1]
    return "model"


def download_mlflow_model(uri: str, staging: Path) -> Path:
    """Download the model at an MLflow URI (against the configured tracking URI) into ``staging``.

    Returns:
        The local folder holding ``MLmodel``: ``staging/<name>`` (see :func:`_folder_name`).
    """
    mlflow = _import_mlflow()
    tracking_uri = _configured_tracking_uri(mlflow, uri)
    scratch = staging / ".download"
    scratch.mkdir()
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(scratch), tracking_uri=tracking_uri)
        )
    except Exception as exc:  # MlflowException, OSError, ...: one boundary, our error
        raise ValidationError(
            f"model path {uri!r}: MLflow could not resolve it against tracking URI {redact_uri(tracking_uri)!r}: {exc}",
            field="path",
        ) from None
    if not (local.is_dir() and (local / "MLmodel").is_file()):
        raise ValidationError(f"model path {uri!r} does not point at an MLflow model (no MLmodel file)", field="path")
    target = staging / _folder_name(uri)
    os.replace(local, target)
    shutil.rmtree(scratch, ignore_errors=True)
    return target


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """Parse a model folder's ``MLmodel`` file."""
    try:
        data, _ = load_yaml(folder / "MLmodel")
    except ValidationError as exc:
        raise ValidationError(f"cannot read the MLflow model description: {exc.message}") from None
    return data


def check_pyfunc(folder: Path, source: str | None = None) -> dict[str, Any]:
    """Refuse an MLflow model without the ``python_function`` flavor (Azure runs pyfunc only)."""
    mlmodel = read_mlmodel(folder)
    flavors = mlmodel.get("flavors") or {}
    if not isinstance(flavors, dict):
        raise ValidationError(f"{folder / 'MLmodel'}: 'flavors' is not a mapping", field="path")
    if "python_function" not in flavors:
        raise ValidationError(
            f"MLflow model {source or str(folder)!r} has flavor(s) {', '.join(sorted(flavors)) or 'none'} but no "
            "python_function (pyfunc) flavor; batch deployments score MLflow models through pyfunc only",
            field="path",
        )
    return mlmodel


def _sklearn_flavor(mlmodel: dict[str, Any]) -> dict[str, Any]:
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    return flavor if isinstance(flavor, dict) else {}


def skops_types_needed(folder: Path, mlmodel: dict[str, Any]) -> list[str]:
    """Every type a skops-serialized sklearn model file needs beyond skops's default allow-list
    (whatever its ``MLmodel`` declares as trusted). Empty for other serialization formats."""
    flavor = _sklearn_flavor(mlmodel)
    if flavor.get("serialization_format") != "skops":
        return []
    try:
        import skops.io
    except ImportError:
        raise MissingDependencyError(
            "this MLflow model is saved with skops: pip install skops (it comes with 'batchnb[mlflow]')"
        ) from None
    model_file = folder / str(flavor.get("pickled_model") or "model.skops")
    try:
        needed = skops.io.get_untrusted_types(file=model_file)
    except Exception as exc:  # a missing or damaged file: zipfile, json and OS errors
        raise ValidationError(f"{model_file}: cannot read the skops model file: {exc}", field="path") from None
    return sorted(set(needed))


def apply_trust(folder: Path, mlmodel: dict[str, Any], types: list[str]) -> None:
    """Record exactly ``types`` as trusted in the workspace copy's ``MLmodel`` (atomically)."""
    flavor = mlmodel["flavors"]["sklearn"]
    flavor["skops_trusted_types"] = sorted(types)
    tmp = folder / ".MLmodel.tmp"
    tmp.write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    tmp.replace(folder / "MLmodel")


def prepare_mlflow_copy(folder: Path, trust_types: bool, source: str) -> dict[str, Any]:
    """Check a copied MLflow model folder and apply the trust policy. Returns facts for the model record.

    Raises:
        ValidationError: no pyfunc flavor (naming the flavors), or types that need trusting without
            ``trust_types`` (listing them).
    """
    mlmodel = check_pyfunc(folder, source)
    flavors = mlmodel.get("flavors") or {}
    facts: dict[str, Any] = {"source": source, "flavors": sorted(flavors)}
    if mlmodel.get("signature"):
        facts["signature"] = mlmodel["signature"]
    fmt = _sklearn_flavor(mlmodel).get("serialization_format")
    if fmt:
        facts["serialization_format"] = fmt
    needed = skops_types_needed(folder, mlmodel)
    if needed:
        if not trust_types:
            declared = set(_sklearn_flavor(mlmodel).get("skops_trusted_types") or [])
            note = (
                " (the model's own MLmodel declares them trusted, but that list comes with the model, "
                "so batchnb asks you)"
                if declared >= set(needed)
                else ""
            )
            raise ValidationError(
                f"MLflow model {source!r} is saved with skops and needs types that are not trusted by default: "
                f"{', '.join(needed)}{note}. If you trust this model, register it with --trust-types "
                "(trust_types=True); the types are then recorded with the model version",
                field="path",
            )
        apply_trust(folder, mlmodel, needed)
        facts["trusted_types"] = needed
    return facts
