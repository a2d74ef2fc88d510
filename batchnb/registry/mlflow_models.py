"""MLflow models in the registry: fetching ``runs:/`` and ``models:/`` URIs, checking flavors, and the
trust decision for skops-serialized scikit-learn models.

MLflow is imported only here and only when a URI must be resolved; checking a local MLflow model
folder reads its ``MLmodel`` YAML and needs no MLflow at all.

Trust policy (MLflow 3 saves scikit-learn models with skops by default, and skops refuses to load
types outside an allow-list): registering a model is the act of trusting it, but only for what the
user saw. At registration we list the types the model file needs beyond those its ``MLmodel``
already trusts. If there are none, nothing changes. If there are some, registration is refused
with the list, unless the caller passes ``trust_types=True`` (``--trust-types`` on the CLI); then the
workspace's copy of ``MLmodel`` records them in ``skops_trusted_types`` and the model record keeps
the list, so a reviewer can always see what was trusted and when.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import MissingDependencyError, ValidationError

MLFLOW_URI_PREFIXES = ("runs:/", "models:/")


def is_mlflow_uri(path: str) -> bool:
    """True for ``runs:/<run>/<path>`` and ``models:/<name>/<version>`` / ``models:/<name>@<alias>``."""
    return path.startswith(MLFLOW_URI_PREFIXES)


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise MissingDependencyError(
            "MLflow is not installed: pip install 'batchnb[mlflow]' to use MLflow models"
        ) from None
    return mlflow


def download_mlflow_model(uri: str, destination: Path) -> Path:
    """Download the model at an MLflow URI (against the configured tracking URI) into ``destination``.

    Returns:
        The local folder holding ``MLmodel``.
    """
    mlflow = _import_mlflow()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except Exception as exc:  # MlflowException, OSError, ...: one boundary, our error
        raise ValidationError(
            f"model path {uri!r}: MLflow could not resolve it against tracking URI "
            f"{mlflow.get_tracking_uri()!r}: {exc}",
            field="path",
        ) from None
    if not (local / "MLmodel").is_file():
        raise ValidationError(f"model path {uri!r} does not point at an MLflow model (no MLmodel file)", field="path")
    return local


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """Parse a model folder's ``MLmodel`` file."""
    try:
        data = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationError(f"{folder / 'MLmodel'}: cannot read the MLflow model description: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{folder / 'MLmodel'}: not an MLflow model description")
    return data


def check_pyfunc(folder: Path) -> dict[str, Any]:
    """Refuse an MLflow model without the ``python_function`` flavor (Azure runs pyfunc only)."""
    mlmodel = read_mlmodel(folder)
    flavors = mlmodel.get("flavors") or {}
    if "python_function" not in flavors:
        raise ValidationError(
            f"MLflow model {folder.name} has flavor(s) {', '.join(sorted(flavors)) or 'none'} but no "
            "python_function (pyfunc) flavor; batch deployments score MLflow models through pyfunc only",
            field="path",
        )
    return mlmodel


def untrusted_skops_types(folder: Path, mlmodel: dict[str, Any]) -> list[str]:
    """The types a skops-serialized sklearn model needs beyond those its MLmodel already trusts."""
    flavor = (mlmodel.get("flavors") or {}).get("sklearn") or {}
    if flavor.get("serialization_format") != "skops":
        return []
    try:
        import skops.io
    except ImportError:
        raise MissingDependencyError(
            "this MLflow model is saved with skops: pip install skops (it comes with 'batchnb[mlflow]')"
        ) from None
    needed = skops.io.get_untrusted_types(file=folder / flavor.get("pickled_model", "model.skops"))
    already = set(flavor.get("skops_trusted_types") or [])
    return sorted(t for t in needed if t not in already)


def apply_trust(folder: Path, mlmodel: dict[str, Any], types: list[str]) -> None:
    """Record ``types`` as trusted in the workspace copy's ``MLmodel`` (atomically)."""
    flavor = mlmodel["flavors"]["sklearn"]
    flavor["skops_trusted_types"] = sorted({*(flavor.get("skops_trusted_types") or []), *types})
    tmp = folder / ".MLmodel.tmp"
    tmp.write_text(yaml.safe_dump(mlmodel, sort_keys=False), encoding="utf-8")
    tmp.replace(folder / "MLmodel")


def prepare_mlflow_copy(folder: Path, trust_types: bool, source: str) -> dict[str, Any]:
    """Check a copied MLflow model folder and apply the trust policy. Returns facts for the model record."""
    mlmodel = check_pyfunc(folder)
    facts: dict[str, Any] = {"flavors": sorted((mlmodel.get("flavors") or {}).keys())}
    if mlmodel.get("signature"):
        facts["signature"] = mlmodel["signature"]
    untrusted = untrusted_skops_types(folder, mlmodel)
    if untrusted:
        if not trust_types:
            raise ValidationError(
                f"MLflow model {source!r} is saved with skops and needs types that are not marked trusted: "
                f"{', '.join(untrusted)}. If you trust this model, register it with --trust-types "
                "(trust_types=True); the types are then recorded with the model version",
                field="path",
            )
        apply_trust(folder, mlmodel, untrusted)
        facts["trusted_types"] = untrusted
    return facts
