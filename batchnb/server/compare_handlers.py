"""The REST handler that compares two deployments: ``POST endpoints/<ep>/compare`` (:mod:`.handlers`
has the route table and the rest)."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from .base import EXECUTE, BatchnbHandler
from .models import CompareRequest


class EndpointCompareHandler(BatchnbHandler):
    """``endpoints/<endpoint>/compare``: score one input with two deployments and compare their outputs
    (:func:`batchnb.engine.compare.compare`). Answers when both jobs have ended and the outputs are
    joined; the jobs show in the job list meanwhile. It runs the deployments' code: ``execute``."""

    @tornado.web.authenticated
    @authorized
    @authorized(EXECUTE)
    async def post(self, endpoint: str) -> None:
        request = self.parse(CompareRequest)
        given = request.input if isinstance(request.input, str) else request.input.model_dump(exclude_none=True)
        root = self.batchnb.root_dir
        comparison = await self.call(
            lambda c: c.batch_endpoints.compare(
                endpoint,
                request.deployments,
                input=given,
                input_type=request.input_type,
                sample=request.sample,
                max_disagreements=request.max_disagreements,
                base_dir=root,
            )
        )
        self.reply(comparison)


ROUTES: list[tuple[str, type[BatchnbHandler]]] = [
    ("endpoints/(?P<endpoint>[^/]+)/compare", EndpointCompareHandler),
]
