"""HMAC signatures of webhook bodies, both ways: what we deliver and what is delivered to us.

The header is `X-Agent-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + the raw body,
keyed with the agent's webhook secret>`, Stripe's scheme (scheduler's core signing): compared in
constant time, and refused when signed more than TOLERANCE seconds ago (or ahead), so a captured
delivery cannot be replayed later.
"""

from __future__ import annotations

from scheduler.core import SIGNATURE_TOLERANCE, SignatureError, signature_check, signature_header

HEADER = "X-Agent-Signature"
TOLERANCE = SIGNATURE_TOLERANCE  # seconds
SCHEME = 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + the raw body>'


def sign(secret: str, body: bytes, *, now: float | None = None) -> str:
    """The header value signing `body` with `secret` at `now` (default: the clock)."""
    return signature_header(secret, body, now=now)


def signature_verify(secret: str, body: bytes, header: str | None) -> None:
    """Nothing if `header` signs `body` with `secret` recently; SignatureError saying why not."""
    signature_check(secret, body, header, tolerance=TOLERANCE)


__all__ = ["HEADER", "SCHEME", "TOLERANCE", "SignatureError", "sign", "signature_verify"]
