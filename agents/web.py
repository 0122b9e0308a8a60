"""HTTP endpoints on the worker's web port: /metrics for Prometheus, /healthz for liveness."""

from __future__ import annotations

import faust
from faust.web import Request, Response, View
from prometheus_client import generate_latest

# aiohttp refuses a charset inside content_type; Prometheus' text format is UTF-8 by definition.
CONTENT_TYPE = "text/plain; version=0.0.4"


def attach(app: faust.App) -> None:
    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE)

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})
