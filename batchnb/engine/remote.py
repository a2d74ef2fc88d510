"""Scoring on Dask workers that do not share a filesystem with the agent.

A job on a Dask compute first asks whether every worker sees its folder (:func:`prepare`). If
one does not, the job runs *shipped*, and nothing of the agent's filesystem is needed there:

- its code snapshot and its model are shipped once per content, unpacked into each worker's cache
  (:mod:`batchnb.compute.shipping`); the worker's context points at them;
- each mini-batch carries the bytes of its input files that are on this machine (inputs behind
  an fsspec URL are read by the worker itself); the script sees copies with the same file names;
- each mini-batch also carries the registered datastores that hold its URLs and the job's output,
  with their credentials (the worker cannot read the workspace's store nor its secrets file): in
  the task, in memory, never written on the worker's host;
- the worker keeps its logs and scratch files in a job folder of its own cache
  (``<cache>/jobs/<job>``), and returns its part's bytes with its result: the agent commits the part
  (:func:`commit_returned`), with the tracebacks of failed attempts, into the job's folder here.

A job whose workers all see its folder runs as on a local compute, with no copy at all.

A job with an environment has it built on every host first (:mod:`batchnb.compute.hostenv`), and
each of its mini-batches is scored by :func:`score_on_dask` in an environment process of the Dask
worker, which runs the build's own interpreter: never in the Dask worker's process, which may have
scored another environment's job. A job without one is scored in the Dask worker's process.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cloud import fs
from ..files import atomic_write_bytes
from ..specfile import is_url
from . import output, tabular
from .worker import score_minibatch


def prepare(
    context: dict[str, Any], workers: Any, log: Callable[[str], None], environment: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The context a job's mini-batches are scored with on ``workers``. Local workers: as it is.
    On a Dask cluster: marked ``shipped`` with the digests of the code snapshot and the model (sent
    to the cluster now) if a worker does not see the job's folder; and with the job's
    ``environment`` (``name``, ``build``: its record, ``revision``: the revision key of the job's
    deployment), built on every host now."""
    if not hasattr(workers, "ship"):
        return context
    context = _shipped_if_unseen(context, workers, log)
    environment = environment or {}
    build = environment.get("build")
    if build:
        _build_on_hosts(workers, str(environment.get("name") or "of the deployment"), build, log)
        # An environment process serves one revision, as a local worker does (its key).
        return {**context, "environment": build, "revision": environment.get("revision")}
    return {**context, "environment": None}


def _shipped_if_unseen(context: dict[str, Any], workers: Any, log: Callable[[str], None]) -> dict[str, Any]:
    seen = workers.sees_folder(context["job_dir"])
    if seen and all(seen.values()):
        return context
    blind = sorted(w for w, ok in seen.items() if not ok)
    who = f"worker(s) {', '.join(blind)} do not" if blind else "no worker could say whether it can"
    log(
        f"{who} see this machine's job folder {context['job_dir']}: the code snapshot and the model are "
        "shipped to the cluster, inputs on this machine go with their mini-batches, and the parts come back here"
    )
    shipped: dict[str, str | None] = {"code": None, "model": None}
    for what, folder in (("code", context["code_dir"]), ("model", context.get("model_dir"))):
        if not folder:
            continue
        started = time.monotonic()
        digest, sent = workers.ship(folder)
        shipped[what] = digest
        how = f"sent in {time.monotonic() - started:.1f} s" if sent else "already on the cluster"
        log(f"{'code snapshot' if what == 'code' else 'model'} {digest[:12]} ({folder}): {how}")
    return {**context, "shipped": shipped}


def _build_on_hosts(workers: Any, name: str, build: dict[str, Any], log: Callable[[str], None]) -> None:
    """Build the job's environment on every host of the cluster before its first mini-batch.

    Raises:
        ComputeError: A host could not build it; the message names the host and uv's reason.
    """
    from ..compute import hostenv
    from ..errors import ComputeError

    started = time.monotonic()
    for address, (host, got) in sorted(workers.on_every_worker(hostenv.ensure_built, build).items()):
        if isinstance(got, BaseException):
            reason = getattr(got, "message", None) or f"{type(got).__name__}: {got}"
            raise ComputeError(f"environment {name} could not be built on host {host} (worker {address}): {reason}")
        if not got["needed"]:
            log(f"environment {name} on host {host} (worker {address}): not needed, its Python has every package")
        elif got["built_now"]:
            log(f"environment {name} on host {host} (worker {address}): built in {got['seconds']:.1f} s")
        else:
            log(f"environment {name} on host {host} (worker {address}): in the host's cache")
    log(f"environment {name} ready on the cluster's hosts in {time.monotonic() - started:.1f} s")


def task_for(context: dict[str, Any], items: list[Any]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """What to submit for a mini-batch of ``items``, past the usual arguments: on a Dask cluster,
    :func:`score_on_dask` (with the bytes of its local inputs if the job is shipped); else the
    plain entry point."""
    if "environment" not in context:
        return score_minibatch, ()
    if "shipped" not in context:
        return score_on_dask, ()
    urls = [path for path in {_item_path(item) for item in items} if is_url(path)]
    if is_url(context["output_dir"]):
        urls.append(context["output_dir"])
    return score_on_dask, (read_inputs(items), fs.shipped_datastores(urls))


# What ensure_built said in this worker process, by build record: a host's build is looked up once.
_built: dict[str, dict[str, Any]] = {}


def score_on_dask(
    context: dict[str, Any], idx: int, attempt: int, items: list[Any], n_items: int, *inputs: Any
) -> dict[str, Any]:
    """On a Dask worker: score one mini-batch, from shipped files if the job is shipped; in the
    environment process of the job's build (built on this host first if this worker joined after
    the job started), or in this process for a job without one.

    A failed build or an environment process that died is a failed attempt (``retry``), as a
    lost worker is."""
    started = time.time()
    python = None
    if context["environment"]:
        try:
            python = _built_here(context["environment"])["python"]
        except Exception as exc:  # this host cannot build it: a failed attempt, retried elsewhere
            error = f"the environment could not be built on this worker's host: {getattr(exc, 'message', exc)}"
            return {"idx": idx, "attempt": attempt, "status": "retry", "error": error, "duration": 0.0}
    local, datastores = context, None
    if "shipped" in context:  # unpacked and written here: the environment's Python may lack Dask
        local, datastores = _local_context(context), list(inputs[1] or []) if len(inputs) > 1 else []
        local["input_paths"] = _write_inputs(Path(local["job_dir"]) / "inputs" / "shipped", inputs[0])
    if python is None:
        result = score_with(datastores, local, idx, attempt, items, n_items)
    else:
        from ..compute import envproc

        try:
            result = envproc.run_in_environment(
                python, str(context.get("revision")), score_with, datastores, local, idx, attempt, items, n_items
            )
        except envproc.EnvironmentProcessLost as exc:
            took = time.time() - started
            return {"idx": idx, "attempt": attempt, "status": "retry", "error": str(exc), "duration": took}
    return _returned(local, idx, result) if "shipped" in context else result


def _built_here(record: dict[str, Any]) -> dict[str, Any]:
    """What :func:`batchnb.compute.hostenv.ensure_built` says of ``record`` on this host (asked once
    per worker process)."""
    import json

    from ..compute import hostenv

    key = json.dumps(record, sort_keys=True)
    known = _built.get(key)
    if known is None or (known["python"] and not os.path.exists(known["python"])):  # removed since
        _built[key] = known = hostenv.ensure_built(record)
    return known


def score_with(
    datastores: list[dict[str, Any]] | None,
    context: dict[str, Any],
    idx: int,
    attempt: int,
    items: list[Any],
    n_items: int,
) -> dict[str, Any]:
    """Score one mini-batch in this process (a Dask worker's, or its environment process), reading
    its URLs with the ``datastores`` a shipped job's task brought (None: the workspace's)."""
    fs.use_datastores(datastores)
    return score_minibatch(context, idx, attempt, items, n_items)


def _item_path(item: Any) -> str:
    return str(item["path"] if isinstance(item, dict) else item)


def read_inputs(items: list[Any]) -> dict[str, bytes]:
    """The bytes of the input files of ``items`` that are on this machine, by path (a tabular
    file chunked into several items is sent once per mini-batch)."""
    out: dict[str, bytes] = {}
    for item in items:
        path = _item_path(item)
        if not is_url(path) and path not in out:
            out[path] = Path(path).read_bytes()
    return out


def _local_context(context: dict[str, Any]) -> dict[str, Any]:
    from ..compute import shipping

    shipped = context["shipped"]
    job_dir = shipping.worker_cache() / "jobs" / context["job"]
    local = dict(context)
    local["code_dir"] = str(shipping.unpacked(shipped["code"]))
    local["model_dir"] = str(shipping.unpacked(shipped["model"])) if shipped["model"] else None
    local["job_dir"] = str(job_dir)
    local["cache_dir"] = str(shipping.worker_cache() / "cache")
    if not is_url(context["output_dir"]):
        local["output_dir"] = str(job_dir / "output")
    return local


def _write_inputs(folder: Path, inputs: dict[str, bytes]) -> dict[str, str]:
    """Write shipped inputs under ``folder``, each keeping its file name; return where each went."""
    where: dict[str, str] = {}
    for path, data in inputs.items():
        local = folder / uuid.uuid5(uuid.NAMESPACE_URL, path).hex / Path(path).name
        local.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(local, data, durable=False)
        where[path] = str(local)
    return where


def _returned(local: dict[str, Any], idx: int, result: dict[str, Any]) -> dict[str, Any]:
    """A shipped job's result, with the part's bytes (``part``) instead of the part committed on this
    host, for :func:`commit_returned`."""
    result["shipped"] = True
    part = output.part_path(Path(local["job_dir"]) / "parts", idx, local["part_format"])
    if result["status"] == "ok" and part.exists():
        result["part"], result["part_name"] = part.read_bytes(), part.name
        part.unlink()
    return result


def shipped_input(context: dict[str, Any], items: list[Any]) -> Any:
    """What ``run()`` is given on a worker that got copies of the inputs: the copies' paths (file
    mode), or the frame read from them (tabular mode), whose row sources name the original files."""
    where: dict[str, str] = context["input_paths"]
    if context["mode"] != "tabular":  # a URL is fetched here, as a worker that sees the job's folder does
        fetched = iter(fs.download([item for item in items if item not in where], Path(context["job_dir"]) / "inputs"))
        return [where[item] if item in where else next(fetched) for item in items]
    chunks = [{**chunk, "path": where.get(chunk["path"], chunk["path"])} for chunk in items]
    frame = tabular.read_chunks(chunks)
    back = {local: path for path, local in where.items()}
    sources = frame.attrs.get("batchnb_sources") or []
    frame.attrs["batchnb_sources"] = [(back.get(path, path), first, count) for path, first, count in sources]
    return frame


def commit_returned(job_dir: Path, result: dict[str, Any]) -> None:
    """On the agent: commit the part a shipped worker returned, and keep its traceback in the job's
    ``logs/user/error/<worker>.txt`` (the worker's own copy is on its host).

    Raises:
        OSError: The part could not be written here (batchnb's own file: a system fault).
    """
    if not result.pop("shipped", False):
        return
    data, name = result.pop("part", None), result.pop("part_name", None)
    if data is not None and name:
        parts = job_dir / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(parts / Path(name).name, data, durable=False)
    text = result.get("traceback") or (result.get("error") if result["status"] == "init_failed" else None)
    if text and result.get("worker"):
        folder = job_dir / "logs" / "user" / "error"
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"{result['worker']}.txt", "a", encoding="utf-8") as fh:
            fh.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} mini-batch {result.get('idx')}\n{text}\n")
