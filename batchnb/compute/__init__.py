"""Where a job's mini-batches run.

``local`` (and ``amlcompute``, accepted so Azure scripts run) is this machine: its agent's worker
slots (:mod:`batchnb.compute.workers`), forked from one zygote (:mod:`batchnb.compute.zygote`).
``ssh`` is a Dask cluster over SSH hosts (:mod:`batchnb.compute.ssh`), ``dask`` one that already
runs (:mod:`batchnb.compute.dask`); a job uses either through
:class:`batchnb.compute.dask.DaskWorkers`, which hands back ``concurrent.futures`` futures. The
engine never depends on which it got: it submits, waits and, after a lost worker, submits again.
"""
