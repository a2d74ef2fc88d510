"""Confining the paths a caller may name to some folders, for a front end that serves other people.

The CLI, the magics and a notebook name the user's own files, so nothing is confined there. The
Jupyter server acts for whoever holds its token, and its root folder is what it offers them: it runs
each request inside :func:`confined` with the folders it allows (its ``root_dir``, its
``allowed_paths``, the workspace's registered datastores). Inside that block every local path the
core resolves (:func:`batchnb.specfile.resolve_local` asks :func:`check_path`), every folder it
copies into the workspace (:func:`check_tree`) and every URL it reads or writes (:func:`check_url`)
must stay inside them, else :class:`~batchnb.errors.PathNotAllowedError` names the field and the path.
A remote URL (``https://``, ``s3://``, ...) is allowed only under a registered datastore's URL or a
URL prefix among the server's ``allowed_paths``: otherwise whoever holds the token could make the
server fetch from addresses only it can reach (its cloud metadata service, an internal host).

Paths are compared after ``..`` and symlinks are resolved (``realpath``), so a symlink inside an
allowed folder that points outside it is refused. The folders live in a context variable rather
than a parameter: paths are resolved deep inside the core (a component's code folder, a
deployment's inline model), and the rule is the caller's, not the spec's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import unquote

from .errors import PathNotAllowedError

# (allowed folders, resolved; allowed URL prefixes: fsspec datastores) or None when nothing is confined.
_ROOTS: ContextVar[tuple[tuple[Path, ...], tuple[str, ...]] | None] = ContextVar("batchnb_confined", default=None)

# fsspec protocols that read or write this machine's files (directly, or by wrapping a local
# file: an archive, a cache, a reference set), so a URL with one of them is a local path in disguise.
_LOCAL_PROTOCOLS = frozenset(
    {"file", "local", "dir", "zip", "tar", "libarchive", "reference"}
    | {"cached", "blockcache", "filecache", "simplecache"}
)


@contextmanager
def confined(roots: Iterable[str | os.PathLike[str]]) -> Iterator[None]:
    """Within the block, local paths and URLs must resolve inside ``roots``.

    Args:
        roots: The allowed folders (each resolved by realpath), and the URLs of registered fsspec
            datastores (allowed as prefixes).

    Returns:
        A context manager.
    """
    given = [str(r) for r in roots]
    folders = tuple(_real(r) for r in given if "://" not in r)
    urls = tuple(r.rstrip("/") for r in given if "://" in r)
    token = _ROOTS.set((folders, urls))
    try:
        yield
    finally:
        _ROOTS.reset(token)


@contextmanager
def allowing(folder: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, also allow ``folder``: one of the workspace's own that the core chose for its
    work (a comparison's scratch folder), which no caller named (nothing changes outside a block)."""
    rule = _ROOTS.get()
    if rule is None:
        yield
        return
    token = _ROOTS.set(((*rule[0], _real(str(folder))), rule[1]))
    try:
        yield
    finally:
        _ROOTS.reset(token)


def current_roots() -> list[str] | None:
    """The allowed folders and URLs of the enclosing :func:`confined` block, or None outside one."""
    rule = _ROOTS.get()
    return None if rule is None else [*map(str, rule[0]), *rule[1]]


def check_path(path: str | os.PathLike[str], field: str, given: str | None = None) -> None:
    """Refuse a local path that resolves outside the allowed folders (nothing to check outside a block).

    Args:
        path: The path as the core resolved it (absolute).
        field: The request field that named it, for the message.
        given: The path as the caller wrote it, if it differs.
    """
    rule = _ROOTS.get()
    if rule is None:
        return
    real = _real(str(path))
    if any(real.is_relative_to(folder) for folder in rule[0]):
        return
    shown = given if given is not None else str(path)
    raise PathNotAllowedError(
        f"{field}: {shown!r} resolves to {real}, outside the folders this server may use "
        "(its root folder, its allowed_paths and the workspace's datastores)",
        field=field,
    )


def check_tree(folder: str | os.PathLike[str], field: str) -> None:
    """Refuse a folder (about to be copied) with a symlink anywhere inside it that leads outside.

    Args:
        folder: The folder, already checked itself with :func:`check_path`.
        field: The request field that named it.
    """
    if _ROOTS.get() is None:
        return
    seen: set[str] = set()
    stack = [str(folder)]
    while stack:
        top = stack.pop()
        real = os.path.realpath(top)
        if real in seen:  # a symlink cycle: copying would fail on it anyway
            continue
        seen.add(real)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in (*dirnames, *filenames):
                entry = os.path.join(dirpath, name)
                if os.path.islink(entry):
                    check_path(entry, field)
                    if os.path.isdir(entry):  # os.walk does not descend into it; copying would
                        stack.append(entry)


def check_url(url: str, field: str) -> None:
    """Refuse an fsspec URL that reaches this machine's files outside the allowed folders.

    A URL under an allowed prefix (a registered fsspec datastore, or a URL in ``allowed_paths``)
    passes. Otherwise a chained URL (``a::b``) and the archive and cache protocols are refused as
    local files in disguise, and any other URL as a remote place this server may not reach.

    Args:
        url: The URL as the core resolved it (a datastore URI already turned into its URL).
        field: The request field that named it, for the message.
    """
    rule = _ROOTS.get()
    if rule is None:
        return
    under = any(url.rstrip("/") == prefix or url.startswith(prefix + "/") for prefix in rule[1])
    # A "..", even percent-encoded or after a backslash, may be resolved by the remote end, out of the prefix.
    if under and ".." not in re.split(r"[/\\]", unquote(url)):
        return
    protocol = url.split("://", 1)[0].lower()
    if "::" in url or protocol in _LOCAL_PROTOCOLS:
        raise PathNotAllowedError(
            f"{field}: {url!r} reaches this machine's files through fsspec ({protocol}://); name a path inside "
            "the folders this server may use (its root folder, its allowed_paths and the workspace's datastores)",
            field=field,
        )
    raise PathNotAllowedError(
        f"{field}: {url!r} is not under a registered datastore or a URL in this server's allowed_paths, "
        "the only remote places it may read or write",
        field=field,
    )


def _real(path: str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(path)))
