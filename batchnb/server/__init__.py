"""The Jupyter server extension: batchnb's REST API under ``<base_url>batchnb/api/``, thin over :class:`BatchClient`.

Enabled on install (``jupyter-config/server-config/batchnb.json``); ``batchnb._load_jupyter_server_extension``
imports this package only when the server loads it, so ``import batchnb`` never pulls in tornado.

Routes (each needs an authenticated, authorized Jupyter user; ``GET schema`` lists them all; those
marked ``x`` run code and also need Jupyter's ``execute`` permission)::

    GET    endpoints                              list                        200
    POST   endpoints                              create or update a spec     201 (200 if it existed)
    GET    endpoints/<ep>                          show                        200
    PATCH  endpoints/<ep>                          {"defaults": {...}} / {"set": [...]}   200
    DELETE endpoints/<ep>                          delete (jobs are kept)      204
    GET    endpoints/<ep>/deployments              list                        200
    POST   endpoints/<ep>/deployments              create (?set_default=true)  201 (200: a new revision)  x
    GET    endpoints/<ep>/deployments/<dep>        show                        200
    DELETE endpoints/<ep>/deployments/<dep>        delete                      204
    GET    endpoints/<ep>/jobs                     the endpoint's jobs         200
    POST   endpoints/<ep>/jobs                     invoke (the stable URL)     201 + Location (200 dry run)  x
    POST   endpoints/<ep>/compare                  two deployments on one input, row by row    200  x
    GET    models | POST models | GET models/<m>   latest versions | register | versions
    GET    computes
    GET    components | GET components/<c>       latest versions | versions
    GET    jobs?endpoint=&deployment=&status=&search=&since=&until=&archived=&sort=&limit=&offset=
                                                  a page of jobs and the total (step jobs: ?parent=<job>)
    GET    job-overview?per_endpoint=N            each endpoint's newest N jobs and its job count
    POST   jobs                                   a pipeline job (pipelineJob YAML as JSON, + "set")   201 + Location  x
    GET    jobs/<job>   POST jobs/<job>/cancel   POST jobs/<job>/resume|rerun-failed (x)   (409 on a wrong state)
    GET    jobs/<job>/logs?lines=N   GET jobs/<job>/outputs?output=<name>
    DELETE jobs/<job>   POST jobs/<job>/archive|restore   (an ended job; 409 while it runs)
    GET    jobs/<job>/timeline | worker-timeline | failures?limit=&tracebacks= | summary
           | preview?output=&path=&rows= | file?log=<p> or ?path=<p>&download=
    GET    workspace   GET schema

Paths in request bodies (inputs, outputs, models, code and component files) must resolve, after
``..`` and symlinks, inside the server's ``root_dir``, a registered datastore or one of
``c.BatchnbServer.allowed_paths``; any other is a 403 naming the field and the path. A URL (``https://``,
``s3://``, ...) must be under a registered datastore's URL or a URL prefix in ``allowed_paths``.

Configuration: ``c.BatchnbServer.workspace`` (else ``BATCHNB_WORKSPACE``, else the nearest ``.batchnb/``
at or above the server's ``root_dir``, else the per-user default), ``c.BatchnbServer.allowed_paths`` and
``c.BatchnbServer.dry_run_timeout``.
"""

from __future__ import annotations

from typing import Any

API_PREFIX = "batchnb/api"


def load_jupyter_server_extension(server_app: Any) -> None:
    """Register the handlers on the server's web application."""
    from .extension import setup

    setup(server_app)
