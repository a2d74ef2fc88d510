"""Reading Azure YAML files, applying ``--set`` overrides, and parsing ``azureml:`` references."""

from __future__ import annotations

import copy
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .confine import check_path
from .errors import UsageError, ValidationError
from .storage import describe_kind

# Bounds on any YAML batchnb reads. Azure's spec files are a few kilobytes; these leave ample room
# while refusing, before any memory is spent, a file whose aliases expand it exponentially (the
# "billion laughs"), a FIFO or device that never ends, and nesting that would exhaust the stack.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 100
MAX_YAML_NODES = 100_000
MAX_YAML_CHARS = 8 << 20


class _LimitError(yaml.YAMLError):
    """A YAML file past one of the bounds above (reported like a syntax error, with its line)."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the nesting depth checked as it composes (its composer recurses),
    and the document's size with every alias expanded checked before anything is constructed."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _LimitError(f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        _measure(node, 1, {}, set(), [0, 0])
        return super().construct_document(node)

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise _LimitError(f"an integer of {len(node.value)} digits is too long", node.start_mark) from None


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _measure(node: Any, depth: int, memo: dict[int, tuple[int, int, int]], open_: set[int], totals: list[int]) -> int:
    """Walk ``node`` as if every alias were a copy of its anchor; return its height.

    ``totals`` accumulates the expanded node and character counts; an anchor seen again adds its
    memoised size without being walked again, so the walk costs the file's size, not the expansion's.
    """
    key = id(node)
    if key in open_:
        raise _LimitError("an alias refers to a node that contains it (a recursive structure)", node.start_mark)
    children: list[Any] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    if key in memo:
        nodes, chars, height = memo[key]
        totals[0] += nodes
        totals[1] += chars
    else:
        before = tuple(totals)
        totals[0] += 1
        totals[1] += len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        open_.add(key)
        height = 1 + max((_measure(child, depth + 1, memo, open_, totals) for child in children), default=0)
        open_.discard(key)
        memo[key] = (totals[0] - before[0], totals[1] - before[1], height)
    if depth + height - 1 > MAX_YAML_DEPTH:
        raise _LimitError(f"with its aliases expanded, nested deeper than {MAX_YAML_DEPTH} levels", node.start_mark)
    if totals[0] > MAX_YAML_NODES or totals[1] > MAX_YAML_CHARS:
        raise _LimitError(
            f"with its aliases expanded, more than {MAX_YAML_NODES} values or {MAX_YAML_CHARS >> 20} MiB of text "
            "(aliases that multiply a document are refused)",
            node.start_mark,
        )
    return height


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """One line: where in the text, and what is wrong."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return f" line {line}, column {column}: invalid YAML: unacceptable character #x{exc.character:04x}"
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{where}: invalid YAML: {problem}"


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with ``safe_load``'s types, within the bounds above.

    Raises:
        ValidationError: naming ``source`` and, for syntax errors and bounds, the line.
    """
    try:
        return yaml.load(text, Loader=_BoundedLoader)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{source}:{_yaml_problem(exc, text)}", field="file") from None


def check_nesting(data: Any, source: str) -> None:
    """Refuse data (such as a parsed JSON request body) nested deeper than YAML files may be.

    Raises:
        ValidationError: naming ``source`` and the bound.
    """
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_YAML_DEPTH:
            raise ValidationError(f"{source}: nested deeper than {MAX_YAML_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def read_text_file(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of a regular file of at most :data:`MAX_YAML_BYTES`.

    Raises:
        ValidationError: the file is missing, not a regular file (a FIFO would never end), too
            large, or not UTF-8 text.
    """
    file = Path(path).expanduser()
    try:
        # O_NONBLOCK: opening a FIFO would otherwise wait for a writer before fstat could refuse it.
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file", field=what) from None
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read: {exc.strerror or exc}", field=what) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ValidationError(f"{path}: is {describe_kind(mode)}, not a regular file", field=what)
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MAX_YAML_BYTES + 1)
        except OSError as exc:
            raise ValidationError(f"{path}: cannot read: {exc.strerror or exc}", field=what) from None
    if len(data) > MAX_YAML_BYTES:
        raise ValidationError(f"{path}: larger than {MAX_YAML_BYTES >> 20} MiB, too large for a spec file", field=what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})", field=what
        ) from None


def load_yaml(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Load a YAML mapping from a file, as ``safe_load`` would, within the bounds above.

    Returns:
        The mapping and the folder relative paths inside it resolve against.

    Raises:
        ValidationError: naming the file, and the line for syntax errors.
    """
    file = Path(path).expanduser()
    data = parse_yaml(read_text_file(path), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: expected a YAML mapping at the top level, got {type(data).__name__}")
    return data, file.resolve().parent


def parse_set(assignments: list[str] | None) -> list[tuple[str, Any]]:
    """Parse az-style ``--set key.sub=value`` assignments. Values are YAML scalars (``3`` is an int),
    but yes/no/on/off stay text."""
    out: list[tuple[str, Any]] = []
    for item in assignments or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected key=value, for example defaults.deployment_name=blue")
        try:
            value = parse_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
        except ValidationError:
            value = raw
        if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
            # YAML 1.1 also reads yes/no/on/off as booleans: a string input set to "no" received
            # "False". As in az, only true and false are booleans here.
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


def resolve_local(path: str, base_dir: Path | None, field: str = "path", what: str | None = None) -> Path:
    """Resolve a local path from a YAML file against that file's folder (else the current folder).

    Args:
        path: The path as written (``~`` is expanded).
        base_dir: The folder a relative path is relative to.
        field: The field that named it, for the error when the path is outside the folders that
            the caller may use (:mod:`batchnb.confine`: a server's request).
        what: How a message names the path (default: ``field``).

    Returns:
        The absolute path, with ``..`` and symlinks resolved.

    Raises:
        ValidationError: ``path`` is a symbolic link loop.
        PathNotAllowedError: ``path`` is outside the folders the caller may use.
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (base_dir or Path.cwd()) / p
    try:
        resolved = p.resolve()
    except (RuntimeError, OSError):  # RuntimeError: a symlink loop, before Python 3.13
        raise ValidationError(
            f"{what or field} {path!r} is a symbolic link loop, which leads to no file or folder", field=field
        ) from None
    check_path(resolved, field, given=path)
    return resolved


def is_url(path: str) -> bool:
    """True for ``scheme://...`` URLs other than ``file://`` and ``azureml://``."""
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path)) and not path.startswith(("file://", "azureml://"))
