"""The chat's login session (rag/session.py): what the cookie proves and what it does not."""

from __future__ import annotations

from rag.session import session_value, valid_session


def test_the_session_is_an_hmac_of_the_token_and_not_the_token() -> None:
    value = session_value("s3cret")
    assert "s3cret" not in value and len(value) == 64
    assert value == session_value("s3cret") != session_value("s3cret2")
    assert valid_session(value, "s3cret")


def test_no_token_or_no_cookie_is_no_session() -> None:
    assert not valid_session(session_value(""), "")  # a server without a token has no sessions
    assert not valid_session(None, "s3cret")
    assert not valid_session("", "s3cret")
    assert not valid_session("s3cret", "s3cret")  # the raw token is not a session
    assert not valid_session(session_value("other"), "s3cret")
