"""HTTP endpoints on the worker's web port: /metrics for Prometheus, /models for the scoring
models' versions and quality, /campaigns/{id} for one campaign's live view (answered by the worker
that owns it, whichever worker is asked), /healthz for liveness, /readyz for readiness."""

from __future__ import annotations

from faust.web import Request, Response, View
from prometheus_client import generate_latest

from agents.app import App
from agents.monitor import is_ready
from agents.state import DurableState
from streams.pipeline import Pipeline
from streams.policy import campaign_view

# aiohttp refuses a charset inside content_type; Prometheus' text format is UTF-8 by definition.
CONTENT_TYPE = "text/plain; version=0.0.4"


def attach(app: App, pipeline: Pipeline, input_topic: str, durable: DurableState) -> None:
    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE)

    @app.page("/models")
    async def models(web: View, request: Request) -> Response:
        """The versions, lineage and progressive quality of the models this worker scores with."""
        return web.json({**pipeline.models.report(), "versions": pipeline.models.versions()})

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        """Ready: state recovered and consuming; lists the input partitions this worker owns."""
        owned = sorted(tp.partition for tp in app.assignor.assigned_actives()
                       if tp.topic == input_topic)
        ready = is_ready(app)
        return web.json({"ready": ready, "partitions": owned},
                        status=200 if ready else 503)

    @app.page("/campaigns/{campaign_id}")
    @app.table_route(table=durable.table, match_info="campaign_id")
    async def campaign(web: View, request: Request, campaign_id: str) -> Response:
        """Live state and latest recommendations; Faust forwards the request to the owner."""
        state = pipeline.store.campaigns.get(campaign_id) or durable.load(campaign_id)
        if state is None:
            return web.json({"error": f"unknown campaign {campaign_id!r}"}, status=404)
        return web.json(campaign_view(state))

    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})
