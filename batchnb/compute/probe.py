"""What ``compute check`` asks of one host or Dask worker: its Python, cores, memory, package versions,
a deployment's requirements, a data path's reachability, and whether an environment is built there.

This module is sent as *source* and run there (by ``python -c`` over SSH, by ``exec`` on a Dask
worker), and run here for the local side of the comparison. So it imports nothing but the standard
library (``packaging`` and ``fsspec`` when the host has them): a host without batchnb, or with
another version of it, must still answer.
"""

from __future__ import annotations

from typing import Any


def probe(args: dict[str, Any]) -> dict[str, Any]:
    """Answer for the interpreter running this.

    Args:
        args: ``packages`` (names whose versions to report), ``requirements`` (requirement lines of
            a deployment's environment), ``input`` (a path or fsspec URL to reach, or None),
            ``environment`` (the digest of its build, or None) and ``cache`` (the folder where
            builds live on a host, when not the default).

    Returns:
        ``python``, ``cpus``, ``memory`` (bytes, or None), ``versions``, ``unmet`` (requirement lines
        this interpreter does not satisfy, each explained), ``input`` and ``environment``.
    """
    import importlib.metadata as metadata
    import os
    import sys

    out: dict[str, Any] = {"python": ".".join(map(str, sys.version_info[:3])), "cpus": os.cpu_count()}
    try:
        out["memory"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not on every platform
        out["memory"] = None
    versions: dict[str, str | None] = {}
    for package in args.get("packages") or []:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    out["versions"] = versions
    out["unmet"] = [u for u in (_unmet(line) for line in args.get("requirements") or []) if u]
    if args.get("input"):
        out["input"] = _reach(str(args["input"]))
    if args.get("environment"):
        cache = args.get("cache") or os.environ.get("BATCHNB_WORKER_CACHE")
        if not cache:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            cache = os.path.join(base, "batchnb", "dask")
        python = os.path.join(cache, "envs", str(args["environment"]), "bin", "python")
        out["environment"] = {"built": os.path.exists(python), "python": python}
    return out


def _unmet(line: str) -> str | None:
    """What differs from requirement ``line`` here, or None if it is met (or is no plain requirement)."""
    import importlib.metadata as metadata

    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-") or "://" in text:
        return None
    try:
        from packaging.requirements import Requirement

        req = Requirement(text)
    except ImportError:  # no packaging there: the name alone is checked
        name, specifier = text.split(";")[0].split("=")[0].split("<")[0].split(">")[0].strip(), None
    except Exception:  # not a requirement this check understands
        return None
    else:
        if req.url or (req.marker is not None and not req.marker.evaluate()):
            return None
        name, specifier = req.name, req.specifier
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return f"{name} is missing (required: {text})"
    if specifier and not specifier.contains(installed, prereleases=True):
        return f"{name} is {installed} (required: {text})"
    return None


def _reach(target: str) -> dict[str, Any]:
    """Whether ``target`` (a path, or a URL fsspec reads) exists as seen from here."""
    import os

    try:
        if "://" in target:
            import fsspec

            fs, path = fsspec.core.url_to_fs(target)
            found = bool(fs.exists(path))
        else:
            found = os.path.exists(target)
    except Exception as exc:  # a missing driver, refused credentials: say which
        return {"target": target, "reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"target": target, "reachable": found}
