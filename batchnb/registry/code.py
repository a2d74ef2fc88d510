"""Snapshots of scoring-script folders, content-addressed so identical code is stored once."""

from __future__ import annotations

import ast
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

from ..confine import check_path
from ..errors import ValidationError

_SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv", "node_modules"}


def _files(folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in _SKIP_DIRS for part in rel.parts) or not path.is_file():
            continue
        out.append(path)
    return out


def _module_functions(tree: ast.Module) -> set[str]:
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def may_define(script: Path, name: str) -> bool:
    """False only if ``script`` parses and neither defines, assigns nor imports ``name`` at module level."""
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except (OSError, SyntaxError, ValueError):
        return True
    names = _module_functions(tree)
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return True
                names.add(alias.asname or alias.name.split(".")[0])
    return name in names


def check_scoring_script(script: Path) -> None:
    """Refuse a scoring script that does not parse or lacks ``init()`` and ``run()`` at module level.

    Raises:
        ValidationError: naming the file and line, as Azure's script validation would.
    """
    try:
        tree = ast.parse(script.read_text(encoding="utf-8"), filename=str(script))
    except SyntaxError as exc:
        raise ValidationError(
            f"scoring script {script.name} has a syntax error at line {exc.lineno}: {exc.msg} "
            "(use --skip-script-validation to register it anyway)",
            field="code_configuration.scoring_script",
        ) from None
    defined = _module_functions(tree)
    missing = [name for name in ("init", "run") if name not in defined]
    if missing:
        raise ValidationError(
            f"scoring script {script.name} does not define {' and '.join(m + '()' for m in missing)} at module level",
            field="code_configuration.scoring_script",
        )


def check_code(code_dir: Path, scoring_script: str, *, validate: bool = True) -> None:
    """Every refusal :func:`snapshot_code` can make, without copying anything.

    Args:
        code_dir: The deployment's ``code_configuration.code`` folder, already resolved.
        scoring_script: The script's path relative to ``code_dir``.
        validate: Check that the script parses and defines ``init`` and ``run``.
    """
    if not code_dir.is_dir():
        raise ValidationError(f"code folder {code_dir} does not exist", field="code_configuration.code")
    script = (code_dir / scoring_script).resolve()
    if not script.is_relative_to(code_dir.resolve()):
        raise ValidationError(
            f"scoring script {scoring_script!r} is outside the code folder {code_dir}",
            field="code_configuration.scoring_script",
        )
    if not script.is_file():
        raise ValidationError(
            f"scoring script {scoring_script!r} is not a file in {code_dir}", field="code_configuration.scoring_script"
        )
    if validate:
        check_scoring_script(script)
    for path in _files(code_dir):
        check_path(path, "code_configuration.code")


def snapshot_code(code_dir: Path, scoring_script: str, store_root: Path, *, validate: bool = True) -> Path:
    """Copy ``code_dir`` into ``store_root/<sha256>`` (once per distinct content) and return that folder.

    Args:
        code_dir: The deployment's ``code_configuration.code`` folder, already resolved.
        scoring_script: The script's path relative to ``code_dir``.
        store_root: The workspace's ``artifacts/code`` folder.
        validate: Check that the script parses and defines ``init`` and ``run``.
    """
    check_code(code_dir, scoring_script, validate=validate)
    return snapshot_folder(code_dir, store_root, "code_configuration.code")


class Snapshot(NamedTuple):
    """A folder's snapshot, checked and named (``path``) but not copied yet: :meth:`place` copies it."""

    source: Path
    files: list[Path]
    path: Path

    def place(self) -> Path:
        """Copy the folder to ``path`` unless an identical snapshot is there already; return ``path``."""
        if self.path.is_dir():
            return self.path
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.path.parent))
        try:
            for path in self.files:
                dest = staging / path.relative_to(self.source)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            try:
                staging.rename(self.path)
            except OSError:
                if not self.path.is_dir():  # another process placed the same snapshot first: fine
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.path


def plan_snapshot(code_dir: Path, store_root: Path, field: str = "code") -> Snapshot:
    """Check a folder's files and name its snapshot ``store_root/<sha256 of its files>``, copying nothing.

    Args:
        code_dir: The folder, already resolved.
        store_root: The workspace's ``artifacts/code`` folder.
        field: The field that named the folder, for the error when a file in it is a symlink
            leading outside the folders the caller may use (:mod:`batchnb.confine`).
    """
    digest = hashlib.sha256()
    files = _files(code_dir)
    for path in files:
        check_path(path, field)  # a symlink is copied as its target's content
    for path in files:
        digest.update(str(path.relative_to(code_dir)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return Snapshot(code_dir, files, store_root / digest.hexdigest()[:32])


def snapshot_folder(code_dir: Path, store_root: Path, field: str = "code") -> Path:
    """Copy a folder into ``store_root/<sha256 of its files>`` (once per distinct content); return that
    folder. The arguments are :func:`plan_snapshot`'s."""
    return plan_snapshot(code_dir, store_root, field).place()
