"""A full key appears nowhere but in the one answer that created it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_key_secret_never_lands_in_db_logs_or_errors(live_server):
    issued = live_server.cli("create-user", "leak@example.com", "--password", "leak password 1", "--credits", "3")
    assert issued.returncode == 0
    created = live_server.cli("create-key", "leak@example.com", "--name", "leak", "--rpm", "3")
    secret = created.stdout.strip().splitlines()[-1]
    hidden = secret[12:-4]  # what neither the prefix nor last4 shows
    headers = {"Authorization": f"Bearer {secret}"}
    api = live_server.api
    bodies = []
    with httpx.Client(timeout=20) as client:
        for method, path, body in [
            ("GET", "/models", None),
            ("GET", "/key", None),
            (
                "POST",
                "/chat/completions",
                {"model": "openai/gpt-5", "messages": [{"role": "user", "content": "fail:500"}]},
            ),
            ("POST", "/chat/completions", {"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
            ("POST", "/chat/completions", {"model": "openai/gpt-5", "messages": [{"role": "user", "content": "hi"}]}),
            ("POST", "/chat/completions", {"model": "nope"}),
            ("DELETE", "/models", None),
            ("GET", "/nope", None),
        ]:
            bodies.append(client.request(method, api + path, headers=headers, json=body).text)
        # malformed and wrong-scheme headers carrying the key
        bodies.append(client.post(api + "/chat/completions", headers=headers, content=b"{bad").text)
        bodies.append(client.get(api + "/models", headers={"Authorization": f"Basic {secret}"}).text)
        bodies.append(client.get(api + "/models", headers={"Authorization": f"Bearer {secret}x"}).text)
    assert live_server.cli("revoke-key", secret[:12]).returncode == 0
    time.sleep(1.2)  # the server's key cache (1 s here) lets the revocation through
    with httpx.Client(timeout=20) as client:
        revoked = client.get(api + "/models", headers=headers)
        assert revoked.status_code == 401
        bodies.append(revoked.text)
    time.sleep(0.5)  # let the log writer flush

    for text in bodies:
        assert hidden not in text
    log_text = Path(live_server.log_path).read_text(errors="replace")
    assert hidden not in log_text
    db_path = Path(live_server.database_url.removeprefix("sqlite:///"))
    for path in db_path.parent.glob(db_path.name + "*"):  # the database, its WAL and shared memory
        assert hidden.encode() not in path.read_bytes(), path
