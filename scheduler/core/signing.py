"""Timestamped HMAC signatures of webhook bodies, Stripe's scheme, both ways.

The header value is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + the raw body>`. The time
is inside what is signed, so a captured delivery cannot be passed off as a new one: a receiver
refuses a signature older (or further in the future, for clocks that disagree) than its
tolerance. Several `v1=` values may be given (a key being rotated); one matching is enough.

Pure: no Django, no settings. Who signs with which key is the caller's business.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

# Five minutes, as Stripe: long enough for clocks a little apart and a slow retry queue, short
# enough that a captured delivery is soon useless.
SIGNATURE_TOLERANCE = 300

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# What a refused header may show of itself in an error message.
_SHOWN = 40


class SignatureError(ValueError):
    """A signature that does not prove the body is ours and recent; the message says why."""


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, *, now: float | None = None) -> str:
    """`t=<unix seconds>,v1=<hex digest>` for `body`, signed at `now` (default: the clock)."""
    if not secret:
        # An empty key is known to everybody: what it signs proves nothing.
        raise ValueError("no key to sign with")
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def _parsed(header: str) -> tuple[int, list[str]]:
    shown = header if len(header) <= _SHOWN else header[:_SHOWN] + "…"
    malformed = f"malformed signature {shown!r}: expected t=<unix seconds>,v1=<hex HMAC-SHA256>"
    timestamps: list[str] = []
    digests: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(malformed)
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            digests.append(value)
        # Other schemes (v0, a future v2) are ignored, as Stripe's receivers do.
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]) or not digests:
        raise SignatureError(malformed)
    if not all(_HEX_DIGEST.fullmatch(digest) for digest in digests):
        raise SignatureError(malformed)
    return int(timestamps[0]), digests


def signature_check(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance: int = SIGNATURE_TOLERANCE,
) -> None:
    """Nothing if `header` signs `body` with `secret` within `tolerance` seconds of `now`;
    otherwise SignatureError saying what is wrong (missing, malformed, wrong, too old, ahead)."""
    if not secret:
        raise SignatureError("no key to check the signature with")
    if header is None or not header.strip():
        raise SignatureError("missing signature")
    timestamp, digests = _parsed(header.strip())
    expected = _digest(secret, timestamp, body)
    # Every candidate is compared, in constant time, so timing tells nothing about which.
    matched = [hmac.compare_digest(expected, digest) for digest in digests]
    if not any(matched):
        raise SignatureError("wrong signature: not this body signed with this key")
    # The age is told only once the signature is known to be ours: it is what was signed.
    age = int(time.time() if now is None else now) - timestamp
    if age > tolerance:
        raise SignatureError(f"signature too old: signed {age} s ago (more than {tolerance} s)")
    if -age > tolerance:
        raise SignatureError(
            f"signature from the future: signed {-age} s ahead of this clock "
            f"(more than {tolerance} s)"
        )
