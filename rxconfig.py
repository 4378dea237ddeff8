"""Reflex configuration.

Everything environment-specific comes from the store's settings class, so from the
environment or `.env` alike:

- ``DATABASE_URL`` (default ``sqlite:///data/platform.db``) becomes ``db_url``;
- ``REDIS_URL``, when set, becomes ``redis_url`` so Reflex keeps its state in Redis;
- ``PORT`` (default 3000): in production mode frontend and backend share it;
- ``PUBLIC_BASE_URL`` (e.g. ``https://llm.example.com``): the site's public origin, the
  only one besides localhost:PORT whose pages may open the websocket.
"""

import os
from urllib.parse import urlsplit

import reflex as rx

from store.settings import get_settings

_settings = get_settings()
_port = _settings.port

# The sign-in limits read the client's address themselves, from the socket peer and
# TRUSTED_PROXIES (dashboard/client_address.py). uvicorn (Reflex's backend where granian
# is absent) would first rewrite the peer from any X-Forwarded-For sent via 127.0.0.1,
# which lets a rotating header pass for many clients; it trusts nobody here.
os.environ["FORWARDED_ALLOW_IPS"] = ""


def _own_origins(port: int, public_base_url: str | None) -> list[str]:
    """The origins the page's websocket (and any cross-origin call) may come from: this
    site on localhost, and its public address (`PUBLIC_BASE_URL`) behind a proxy."""
    origins = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    if public_base_url:
        url = urlsplit(public_base_url.strip())
        origins.append(f"{url.scheme}://{url.netloc}")
    return origins


config = rx.Config(
    app_name="dashboard",
    db_url=_settings.database_url,
    redis_url=_settings.redis_url,
    frontend_port=_port,
    backend_port=_port,
    # Not "*": another site's page must not open this site's websocket.
    cors_allowed_origins=_own_origins(_port, _settings.public_base_url),
    telemetry_enabled=False,
    show_built_with_reflex=False,
    # The dashboard is built from Radix Themes components (explicit since 0.9).
    plugins=[rx.plugins.RadixThemesPlugin()],
    # No sitemap.xml: this is a private dashboard, not a site to index.
    disable_plugins=[rx.plugins.SitemapPlugin],
)
