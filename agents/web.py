"""HTTP endpoints on the worker's web port: /metrics for Prometheus, /models for the scoring
models' versions and quality, /campaigns/{id} for one campaign's live view (answered by the worker
that owns it, whichever worker is asked), /healthz for liveness, /readyz for readiness.

With a token (``SOCIALSTREAM_WEB_TOKEN``) every path but the probes' and the scrapers'
(``OPEN_PATHS``) requires ``Authorization: Bearer <token>``: /campaigns and /models, and also
Faust's own /table (table data: the campaign states) and /router (cluster topology) endpoints.
Faust's ``table_route`` forwards /campaigns/{id} to the owner with the request's headers, the
token included.  No response carries aiohttp's ``Server`` header, which names the Python and
aiohttp versions."""

from __future__ import annotations

import hmac
import logging

import aiohttp.web_response
import orjson
from aiohttp import hdrs
from aiohttp import web as aioweb
from aiohttp.typedefs import Handler, Middleware
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import generate_latest

from agents.app import App
from agents.monitor import is_ready
from agents.state import DurableState
from streams.pipeline import Pipeline
from streams.policy import campaign_view

# aiohttp refuses a charset inside content_type; Prometheus' text format is UTF-8 by definition.
CONTENT_TYPE = "text/plain; version=0.0.4"

# Open without a token: liveness and readiness probes, and Prometheus unless
# SOCIALSTREAM_WEB_TOKEN_METRICS puts /metrics behind the token too.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# What aiohttp writes as the Server header of the 400s it answers itself (requests it cannot
# parse never reach the app, its middlewares or its signals); its default names the versions.
SERVER_NAME = "socialstream"

log = logging.getLogger(__name__)


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header value carries the bearer token; always true without a
    token.  hmac.compare_digest: the time taken says nothing about how much of the token a
    guess got right."""
    if not token:
        return True
    scheme, _, credentials = (header or "").strip().partition(" ")
    # Compared even when the scheme is wrong, so that the time says nothing about the header.
    match = hmac.compare_digest(credentials.strip().encode("utf-8", "replace"),
                                token.encode("utf-8"))
    return match and scheme.lower() == "bearer"


def unauthorized() -> aioweb.Response:
    return aioweb.Response(
        status=401, body=orjson.dumps({"error": "missing or wrong bearer token"}),
        content_type="application/json", charset="utf-8",
        headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="socialstream"'})


def require_token(token: str, open_paths: frozenset[str] = OPEN_PATHS) -> Middleware:
    """aiohttp middleware: every route but ``open_paths`` needs the bearer token (unknown paths
    too: they answer 401, not 404, which says nothing about which paths exist)."""

    @aioweb.middleware
    async def check_token(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        resource = request.match_info.route.resource  # the route that would answer (None: 404)
        if (resource is not None and resource.canonical in open_paths) or authorized(
                request.headers.get(hdrs.AUTHORIZATION), token):
            return await handler(request)
        return unauthorized()

    return check_token


async def drop_server_header(request: aioweb.Request, response: aioweb.StreamResponse) -> None:
    response.headers.popall(hdrs.SERVER, None)


def secure(web_app: aioweb.Application, token: str, metrics: bool = False) -> None:
    """Require ``token`` (when set) on every path but ``OPEN_PATHS`` (and on /metrics too with
    ``metrics``); send no Server header."""
    if token:
        open_paths = OPEN_PATHS - {"/metrics"} if metrics else OPEN_PATHS
        web_app.middlewares.append(require_token(token, open_paths))
    web_app.on_response_prepare.append(drop_server_header)
    # The 400s to unparsable requests are written by aiohttp's protocol handler, which fills in
    # the Server header from this module constant.
    if isinstance(getattr(aiohttp.web_response, "SERVER_SOFTWARE", None), str):
        setattr(aiohttp.web_response, "SERVER_SOFTWARE", SERVER_NAME)  # noqa: B010 (private)
    else:  # aiohttp changed: the integration tests say so too
        log.warning("aiohttp.web_response.SERVER_SOFTWARE is gone: the responses to malformed "
                    "requests may name the aiohttp version")


def attach(app: App, pipeline: Pipeline, input_topic: str, durable: DurableState) -> None:
    driver = app.web
    if not isinstance(driver, AiohttpWeb):  # Faust's only driver; another would skip the checks
        raise RuntimeError(f"unexpected Faust web driver {type(driver).__name__}")
    secure(driver.web_app, app.settings.web_token, app.settings.web_token_metrics)

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
