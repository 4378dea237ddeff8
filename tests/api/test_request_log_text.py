"""A NUL in a path or a model id is logged (cleaned) and does not stop the rows after it."""

from __future__ import annotations

import pytest
from sqlmodel import select

from store.db import session_for
from store.models import RequestLog

from ..conftest import flush_logs
from ..factories import auth, make_key, make_user
from .test_errors import CHAT, chat_body

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgres"], indirect=True)


@BOTH
async def test_nul_in_path_and_model_is_logged_cleaned_and_later_requests_are_logged(app, client, engine):
    user = make_user(engine, credits=100)
    secret = make_key(engine, user)
    nul_path = await client.get("/api/v1/x%00y")
    nul_model = await client.post(CHAT, json=chat_body("made\u0000up"), headers=auth(secret))
    later = await client.get("/api/v1/models", headers=auth(secret))
    assert (nul_path.status_code, nul_model.status_code, later.status_code) == (404, 404, 200)
    flush_logs(app)
    with session_for(engine) as s:
        rows = {r.request_id: r for r in s.exec(select(RequestLog))}
    # the path's NUL is percent-encoded again before routing (api.middleware.PrintablePath)
    assert rows[nul_path.headers["x-request-id"]].endpoint == "/api/v1/x%00y"
    assert rows[nul_model.headers["x-request-id"]].model == "made\ufffdup"
    assert rows[later.headers["x-request-id"]].status == 200
    assert app.state.runtime.logs.pending == 0
