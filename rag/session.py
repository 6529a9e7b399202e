"""The chat's login session, checked by the chat and by the API's file route.

When the API has a token (``KAZRAG_API_TOKEN``), the chat's login page (``ui/login.py``) sets a
cookie holding an HMAC of the token — never the token itself, so a leaked cookie does not give
the bearer token away. A browser that follows the chat's "p. N" link to
``/api/documents/{id}/file`` sends that cookie and no ``Authorization`` header, so the file
route accepts either. The check lives here, in the library, because ``rag`` never imports
``ui``; the chat reuses it.
"""

from __future__ import annotations

import hashlib
import hmac

COOKIE = "kazrag-chat"


def session_value(token: str) -> str:
    """The cookie value that proves the token was given (stable while the token is)."""
    return hmac.new(token.encode(), b"kazrag chat session", hashlib.sha256).hexdigest()


def valid_session(cookie: str | None, token: str) -> bool:
    """Whether ``cookie`` is the session of ``token`` (constant-time; no token, no session)."""
    if not token or not cookie:
        return False
    return hmac.compare_digest(cookie.encode(), session_value(token).encode())
