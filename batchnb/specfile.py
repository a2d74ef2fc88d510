"""Reading Azure YAML files, applying ``--set`` overrides, and parsing ``azureml:`` references."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .confine import check_path
from .errors import UsageError, ValidationError


def load_yaml(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Load a YAML mapping with ``safe_load``.

    Returns:
        The mapping and the folder relative paths inside it resolve against.

    Raises:
        ValidationError: naming the file, and the line for syntax errors.
    """
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file", field="file") from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read: {exc.strerror}", field="file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ValidationError(f"{path}:{where}: invalid YAML: {problem}", field="file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data, file.resolve().parent


def parse_set(assignments: list[str] | None) -> list[tuple[str, Any]]:
    """Parse az-style ``--set key.sub=value`` assignments. Values are YAML scalars (``3`` is an int)."""
    out: list[tuple[str, Any]] = []
    for item in assignments or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected key=value, for example defaults.deployment_name=blue")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def apply_set(data: dict[str, Any], assignments: list[tuple[str, Any]]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted ``key`` set to its value (az's ``--set``)."""
    result = copy.deepcopy(data)
    for key, value in assignments:
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UsageError(f"--set {key}: {part!r} is not a mapping, cannot set a key inside it")
            node = child
        node[parts[-1]] = value
    return result


@dataclass(frozen=True)
class AssetRef:
    """A reference to a registered asset: a name and either a version or a label (``latest``)."""

    name: str
    version: str | None = None
    label: str | None = None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else f"{self.name}@{self.label or 'latest'}"


_ARM_RE = re.compile(r"/subscriptions/.+/(?:models|data|environments|components)/([^/]+)/versions/([^/]+)")


def parse_asset_ref(ref: str) -> AssetRef:
    """Parse ``azureml:name:version``, ``azureml:name@latest``, ``name:version``, ``name@label``,
    a bare ``name`` (meaning latest) or an ARM id ``/subscriptions/.../models/<name>/versions/<v>``."""
    text = ref.strip()
    arm = _ARM_RE.fullmatch(text)
    if arm:
        return AssetRef(arm.group(1), version=arm.group(2))
    if text.startswith("azureml://"):
        raise ValidationError(
            f"{ref!r}: registry references (azureml://registries/...) are not supported; "
            "register the asset in this workspace and refer to it as azureml:<name>:<version>"
        )
    text = text.removeprefix("azureml:")
    if "@" in text:
        name, _, label = text.partition("@")
        return AssetRef(name, label=label or "latest")
    if ":" in text:
        name, _, version = text.partition(":")
        return AssetRef(name, version=version)
    return AssetRef(text, label="latest")


def is_asset_ref(value: str) -> bool:
    """True for ``azureml:...`` references (not ``azureml://`` URIs)."""
    return value.startswith("azureml:") and not value.startswith("azureml://")


_DATASTORE_URI = re.compile(r"azureml://datastores/(?P<store>[^/]+)/paths/?(?P<path>.*)")


def parse_datastore_uri(uri: str) -> tuple[str, str] | None:
    """Split ``azureml://datastores/<name>/paths/<path>`` into (name, path); None for other strings."""
    match = _DATASTORE_URI.fullmatch(uri)
    if not match:
        return None
    return match.group("store"), match.group("path")


def resolve_local(path: str, base_dir: Path | None, field: str = "path") -> Path:
    """Resolve a local path from a YAML file against that file's folder (else the current folder).

    Args:
        path: The path as written (``~`` is expanded).
        base_dir: The folder a relative path is relative to.
        field: The field that named it, for the error when the path is outside the folders that
            the caller may use (:mod:`batchnb.confine`: a server's request).

    Returns:
        The absolute path, with ``..`` and symlinks resolved.
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (base_dir or Path.cwd()) / p
    resolved = p.resolve()
    check_path(resolved, field, given=path)
    return resolved


def is_url(path: str) -> bool:
    """True for ``scheme://...`` URLs other than ``file://`` and ``azureml://``."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path)) and not path.startswith(("file://", "azureml://"))
