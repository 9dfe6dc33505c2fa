"""HMAC signatures of webhook bodies, both ways: what we deliver and what is delivered to us.

The header is `X-Agent-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the
agent's webhook secret>`, GitHub's scheme; compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Agent-Signature"


def sign(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    if not secret or not header:
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())
