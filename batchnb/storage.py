"""What a path names, checked before batchnb reads it: local files and folders, and fsspec URLs.

Data comes from users' paths, and a path may name something that cannot be read as data: a named
pipe or a device (reading never ends), a socket, a symbolic link loop, or a URL whose storage
package is not installed. These checks say so in one line, naming the path, before any job is
recorded or any file copied.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import MissingDependencyError, ValidationError


def describe_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``a folder``, ``a named pipe (FIFO)``, ..."""
    for check, words in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if check(mode):
            return words
    return "a special file"


def local_kind(path: Path, given: str, what: str) -> str:
    """``uri_file`` for a regular file, ``uri_folder`` for a folder (symbolic links followed).

    Raises:
        ValidationError: ``path`` does not exist, is a symbolic link loop, or is something that
            cannot be read as data (a FIFO, a socket, a device), named in words.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ValidationError(f"{what} {given!r} does not exist (resolved to {path})", field=what) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValidationError(
                f"{what} {given!r} is a symbolic link loop, which leads to no file or folder", field=what
            ) from None
        raise ValidationError(f"{what} {given!r}: cannot read {path}: {exc.strerror or exc}", field=what) from None
    if stat.S_ISDIR(mode):
        return "uri_folder"
    if stat.S_ISREG(mode):
        return "uri_file"
    raise ValidationError(f"{what} {given!r} is {describe_kind(mode)}, not a regular file or a folder", field=what)


# The pip extras of batchnb that install fsspec's storage packages (fsspec's registry names the package).
_STORAGE_EXTRAS = {"s3fs": "s3", "gcsfs": "gcs", "adlfs": "azure-storage"}


def check_url_scheme(url: str, what: str, workspace: Path | None = None) -> None:
    """Refuse a URL whose scheme fsspec does not know, whose package is not installed, or whose
    files live only inside this process (``memory://``).

    An Azure blob URL (``https://<account>.blob.core.windows.net/...``, ``wasbs://``, ``abfss://``)
    needs adlfs, as ``az://`` does (see :mod:`batchnb.cloud.fs`).

    Raises:
        ValidationError: an unknown scheme, or an in-process one.
        MissingDependencyError: a known scheme whose package is missing; names it and the extra.
    """
    import fsspec
    from fsspec.registry import known_implementations

    from .cloud.fs import check_not_in_process, protocol_of

    check_not_in_process(url, what)
    protocol = protocol_of(url, workspace)
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ValidationError(
            f"{what} {url!r}: {protocol}:// is not a storage scheme batchnb can use (fsspec does not know it)",
            field=what,
        ) from None
    except ImportError:
        known = known_implementations.get(protocol, {})
        package = str(known.get("class", "")).split(".")[0]
        reason = str(known.get("err") or f"{protocol}:// needs a package that is not installed").rstrip(".")
        hint = ""
        if package in _STORAGE_EXTRAS:
            hint = f": pip install 'batchnb[{_STORAGE_EXTRAS[package]}]' (or pip install {package})"
        raise MissingDependencyError(f"{what} {url!r}: {reason}{hint}") from None


def check_copyable(root: Path, given: str, what: str) -> None:
    """Refuse a folder that holds a symbolic link loop, a link back to a folder containing it, a
    broken link, or anything but regular files and folders (copying a device never ends).

    Raises:
        ValidationError: naming the entry, relative to ``root``.
    """
    stack: list[tuple[Path, frozenset[tuple[int, int]]]] = [(root, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            raise ValidationError(
                f"{what} {given!r}: {folder.relative_to(root)} is a symbolic link to a folder that contains it "
                "(a loop)",
                field=what,
            )
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            problem = exc.strerror or str(exc)
            raise ValidationError(f"{what} {given!r}: cannot read {folder}: {problem}", field=what) from None
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(root)
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                raise ValidationError(f"{what} {given!r}: {rel} is a broken symbolic link", field=what) from None
            except OSError as exc:
                problem = "a symbolic link loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
                raise ValidationError(f"{what} {given!r}: {rel}: {problem}", field=what) from None
            if stat.S_ISDIR(mode):
                stack.append((path, ancestors | {key}))
            elif not stat.S_ISREG(mode):
                raise ValidationError(
                    f"{what} {given!r}: {rel} is {describe_kind(mode)}, not a regular file", field=what
                )
