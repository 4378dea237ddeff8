"""Signed media URLs and webhook signatures: pure functions, checked to the byte."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import signing

SECRET = "test-secret-key-0123456789abcdef"
PATH = "img_" + "ab" * 16 + "/0.png"
NOW = 1_700_000_000.0


def parts(url: str) -> tuple[str, str, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path.removeprefix("/api/v1/files/"), query["expires"][0], query["sig"][0]


def test_a_signed_url_verifies_until_it_expires():
    url = signing.signed_media_url(SECRET, PATH, ttl_s=3600, now=NOW, base="https://host")
    assert url.startswith(f"https://host/api/v1/files/{PATH}?expires=")
    path, expires, sig = parts(url)
    assert path == PATH
    assert int(expires) >= NOW + 3600
    assert int(expires) % signing.EXPIRY_STEP_S == 0
    assert signing.verify_media(SECRET, path, expires, sig, now=NOW)
    assert signing.verify_media(SECRET, path, expires, sig, now=int(expires))
    assert not signing.verify_media(SECRET, path, expires, sig, now=int(expires) + 1)


def test_urls_made_within_one_step_are_identical_so_browsers_can_cache_them():
    a = signing.signed_media_url(SECRET, PATH, ttl_s=3600, now=NOW)
    b = signing.signed_media_url(SECRET, PATH, ttl_s=3600, now=NOW + 1)
    assert a == b


@pytest.mark.parametrize("change", ["path", "expires", "sig", "secret"])
def test_any_change_breaks_the_signature(change):
    path, expires, sig = parts(signing.signed_media_url(SECRET, PATH, ttl_s=60, now=NOW))
    secret = SECRET
    if change == "path":
        path = path.replace("/0.png", "/1.png")
    elif change == "expires":
        expires = str(int(expires) + 300)
    elif change == "sig":
        sig = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    else:
        secret = SECRET + "x"
    assert not signing.verify_media(secret, path, expires, sig, now=NOW)


@pytest.mark.parametrize("expires, sig", [(None, "00"), ("123", None), ("soon", "00"), ("", "")])
def test_missing_or_malformed_parameters_do_not_verify(expires, sig):
    assert not signing.verify_media(SECRET, PATH, expires, sig, now=NOW)


@pytest.mark.parametrize("path", ["../secret_key", "img_x/../../secret_key", "img_x/0.exe", "a/b/0.png", "/etc/0.png"])
def test_paths_outside_the_media_pattern_never_verify_even_when_signed(path):
    expires = int(NOW) + 600
    sig = signing.media_signature(SECRET, path, expires)
    assert not signing.verify_media(SECRET, path, expires, sig, now=NOW)


def test_webhook_signature_is_hmac_sha256_of_the_body_under_the_users_secret():
    import hashlib
    import hmac

    secret = signing.webhook_secret(SECRET, 7)
    assert secret.startswith("whsec_") and secret != signing.webhook_secret(SECRET, 8)
    body = b'{"task_id":"img_1","status":"succeeded"}'
    header = signing.webhook_signature(secret, body)
    assert header == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert signing.verify_webhook(secret, body, header)
    assert not signing.verify_webhook(secret, body + b" ", header)
    assert not signing.verify_webhook(signing.webhook_secret(SECRET, 8), body, header)
    assert not signing.verify_webhook(secret, body, None)


# Properties: any signed media URL verifies until it expires; any other (path, expires,
# sig) triple -- a change to any part, or arbitrary text -- never does.

media_paths = st.builds(
    lambda task, i, ext: f"img_{task}/{i}.{ext}",
    st.text("0123456789abcdef", min_size=32, max_size=32),
    st.integers(0, 3),
    st.sampled_from(["png", "jpg", "webp"]),
)


@given(path=media_paths, ttl=st.integers(1, 86_400), now=st.floats(1e9, 2e9), later=st.floats(0, 200_000))
def test_property_signed_urls_verify_exactly_until_expiry(path, ttl, now, later):
    url_path, expires, sig = parts(signing.signed_media_url(SECRET, path, ttl_s=ttl, now=now))
    assert url_path == path
    assert signing.verify_media(SECRET, path, expires, sig, now=now + later) == (now + later <= int(expires))


@given(path=media_paths, other=media_paths, bump=st.integers(1, 10**6), secret=st.text(min_size=16, max_size=40))
def test_property_no_other_triple_verifies(path, other, bump, secret):
    _, expires, sig = parts(signing.signed_media_url(SECRET, path, ttl_s=600, now=NOW))
    if other != path:
        assert not signing.verify_media(SECRET, other, expires, sig, now=NOW)
    assert not signing.verify_media(SECRET, path, str(int(expires) + bump), sig, now=NOW)
    if secret != SECRET:
        assert not signing.verify_media(secret, path, expires, sig, now=NOW)


@given(expires=st.one_of(st.none(), st.text(max_size=12)), sig=st.one_of(st.none(), st.text(max_size=70)))
def test_property_arbitrary_parameters_never_verify(expires, sig):
    assert not signing.verify_media(SECRET, PATH, expires, sig, now=NOW)


@pytest.mark.parametrize("sig", ["é", "\u00e9" * 64, "0" * 63 + "é", "\ud800", "\x00"])
def test_non_ascii_signatures_do_not_verify_and_do_not_raise(sig):
    expires = int(NOW) + 600
    assert not signing.verify_media(SECRET, PATH, expires, sig, now=NOW)
    assert not signing.verify_webhook(signing.webhook_secret(SECRET, 7), b"{}", "sha256=" + sig)


@given(sig=st.text(max_size=70))
def test_property_arbitrary_signatures_with_a_valid_expiry_never_verify(sig):
    assert not signing.verify_media(SECRET, PATH, int(NOW) + 600, sig, now=NOW)
