"""Datastore credentials, kept out of the store: a private file in the workspace.

An account key, a SAS token, a connection string or a secret access key must never land in the
SQLite file (which backups copy, ``workspace check`` reads and other tools open) nor in what
``datastore show`` prints. They live in ``<workspace>/secrets/datastores.json``, one mapping of
credential fields per datastore name, in a folder of mode 0700 and a file of mode 0600, both owned
by the user who runs jobs. The file is rewritten through a temporary name and a rename, so a
reader sees the old mapping or the new one, never half of it.

Jobs read it where they run (their compute's agent, and its workers on this machine), by the name of
the datastore whose URL they are given (see :mod:`batchnb.cloud.fs`).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from ..errors import WorkspaceError
from ..files import atomic_write_bytes

FILE_NAME = "datastores.json"


def secrets_folder(workspace_root: Path) -> Path:
    """The workspace's ``secrets/`` folder, made private (0700) and checked to be this user's.

    Raises:
        WorkspaceError: it is not a folder, another user owns it, or it cannot be made.
    """
    folder = workspace_root / "secrets"
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise WorkspaceError(f"cannot create the workspace's secrets folder {folder}: {exc.strerror}") from exc
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise WorkspaceError(
            f"{folder} must be a folder owned by the user who runs jobs (uid {os.getuid()}): "
            "it holds the datastores' credentials"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)  # only ever tightens
    return folder


def read_all(workspace_root: Path) -> dict[str, dict[str, Any]]:
    """Every datastore's credentials; an empty mapping if none were ever kept.

    Raises:
        WorkspaceError: the file exists but cannot be read or is not a JSON mapping.
    """
    path = workspace_root / "secrets" / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise WorkspaceError(f"cannot read the datastore credentials file {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkspaceError(f"the datastore credentials file {path} is damaged: {exc}") from None
    if not isinstance(data, dict):
        raise WorkspaceError(f"the datastore credentials file {path} is damaged: not a mapping")
    return data


def read(workspace_root: Path, datastore: str) -> dict[str, Any]:
    """One datastore's credential fields (empty: none kept)."""
    return dict(read_all(workspace_root).get(datastore) or {})


def store(workspace_root: Path, datastore: str, credentials: dict[str, Any] | None) -> None:
    """Keep ``credentials`` for ``datastore`` (None or empty: forget any kept before)."""
    folder = secrets_folder(workspace_root)
    data = read_all(workspace_root)
    if credentials:
        data[datastore] = credentials
    elif datastore in data:
        del data[datastore]
    else:
        return
    atomic_write_bytes(folder / FILE_NAME, json.dumps(data, indent=1, sort_keys=True).encode(), private=True)
