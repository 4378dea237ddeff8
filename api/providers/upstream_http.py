"""The upstream hop's HTTP client: one aiohttp `ClientSession` per process.

Measured on this machine (client and server in one process, CPU per call): httpx's
AsyncClient 1.0–1.3 ms, httpx over the httpx-aiohttp transport 0.56–0.68 ms, aiohttp's
ClientSession 0.195–0.203 ms. The fastest option is also the maintained one, so the
chat hop uses it as it is; httpx stays where it serves (image providers, the
reconciler, webhooks, tests).

What is configured here, from settings:
- the connector's limit (`UPSTREAM_MAX_CONNECTIONS`, in use at once, queued beyond) and
  how long an idle keep-alive connection is kept (`UPSTREAM_KEEPALIVE_S`);
- timeouts: connecting (at most 10 s) and the longest silence while reading
  (`UPSTREAM_TIMEOUT_S`); a plain completion also runs under one overall deadline (the
  provider's);
- TLS: the system's trust store, or `UPSTREAM_CA_FILE` (a self-signed upstream);
- proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`), looked
  up once for the upstream's base URL when the session is made and given to it as its
  proxy (aiohttp's `trust_env` would look them up again in a worker thread on every call).

aiohttp never resends a POST on its own (it retries a dropped keep-alive connection only
for idempotent methods), so a request that may have reached the upstream is sent again
only where `UPSTREAM_RETRIES` says so (see providers.openrouter).
"""

from __future__ import annotations

import ssl
import urllib.request
from urllib.parse import urlsplit

import aiohttp
import orjson

from store.settings import Settings


def ssl_context(ca_file: str | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()


def env_proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (None when none applies or NO_PROXY skips it)."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    # proxy_bypass_environment is CPython's own NO_PROXY rule, public but missing from typeshed
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return proxy


def create_session(settings: Settings) -> aiohttp.ClientSession:
    """The process's upstream session; create it inside the running loop (the lifespan)."""
    connector = aiohttp.TCPConnector(
        limit=settings.upstream_max_connections,
        limit_per_host=0,
        keepalive_timeout=settings.upstream_keepalive_s,
        ssl=ssl_context(settings.upstream_ca_file),
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=min(10.0, settings.upstream_timeout_s), sock_read=settings.upstream_timeout_s
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        proxy=env_proxy_for(settings.openrouter_base_url),
        json_serialize=lambda value: orjson.dumps(value).decode(),
        auto_decompress=True,
    )
