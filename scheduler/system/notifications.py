"""Notifications sent by `scheduler.send_notification`: an email, or a JSON POST to a webhook.

A webhook's body is signed when NOTIFICATION_WEBHOOK_SECRET is set: header
`X-Scheduler-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + the raw body>`
(scheduler/core/signing.py, the scheme of the agents' webhooks and the alert channels), so a
receiver can tell our deliveries from anyone's and refuse old ones.

Failures that a later attempt may not repeat (a network error, a timeout, a 5xx, a 429, an
SMTP error) raise NotificationError, which the task retries; a webhook that answers 4xx
otherwise will answer the same next time, so it raises NotificationRejected, which fails at once.
Both carry the webhook's answer code (`status`), None when there was none.
"""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from scheduler.core.plain_text import shortened, text_lines
from scheduler.core.signing import signature_header
from scheduler.protocol import RESPONSE_NOTE

# Statuses worth another attempt: the server is overloaded, restarting, or asks us to wait.
_RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}
_USER_AGENT = "agent-scheduler/1 (+scheduler.send_notification)"
SIGNATURE_HEADER = "X-Scheduler-Signature"


# How much of a refusing webhook's answer is kept (in the failed run's traceback).
RESPONSE_KEPT = 64 * 1024
RESPONSE_LINE_LENGTH = 120


def response_first_line(body: str) -> str:
    """The first line of text of a receiver's answer, markup stripped: "Not Found"."""
    lines = text_lines(body)
    return shortened(lines[0] if lines else "", RESPONSE_LINE_LENGTH)


class NotificationError(RuntimeError):
    """A delivery that failed in a way another attempt may not (the task retries it)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotificationRejected(RuntimeError):
    """A delivery the receiver refused for good (a webhook's 4xx): retrying would not help."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def notification_send(
    *,
    subject: str,
    message: str,
    recipients: list[str] | None = None,
    webhook_url: str | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Send by email to `recipients` or POST to `webhook_url` (exactly one); what was sent."""
    if bool(recipients) == bool(webhook_url):
        raise ValueError("give exactly one of recipients or webhook_url")
    if recipients:
        email_send(subject=subject, message=message, recipients=recipients)
        return {"channel": "email", "recipients": recipients, "subject": subject}
    assert webhook_url is not None
    status = webhook_post(
        url=webhook_url,
        payload={
            "subject": subject,
            "message": message,
            "sent_at": timezone.now().isoformat(),
        },
        timeout=timeout,
        sign=_notification_signature,
    )
    return {"channel": "webhook", "webhook_url": webhook_url, "status": status}


def _notification_signature(body: bytes) -> dict[str, str]:
    secret = settings.NOTIFICATION_WEBHOOK_SECRET
    return {SIGNATURE_HEADER: signature_header(secret, body)} if secret else {}


def email_send(*, subject: str, message: str, recipients: list[str]) -> None:
    try:
        send_mail(subject, message, settings.DEFAULT_FROM_EMAIL, recipients, fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise NotificationError(f"email to {', '.join(recipients)} failed: {exc}") from exc


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # Following a redirect would turn the POST into a GET without its body: a webhook that
    # redirects is misconfigured, and the 3xx is reported as such.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def webhook_post(
    *,
    url: str,
    payload: dict[str, Any],
    timeout: float,
    sign: Callable[[bytes], dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> int:
    """POST `payload` as JSON; the response status (2xx), or an error saying what went wrong.

    `sign` gives the headers that sign the body (computed over the exact bytes sent); `headers`
    are more of them (an `Idempotency-Key`).
    """
    body = json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", "User-Agent": _USER_AGENT, **(headers or {})}
    if sign is not None:
        sent.update(sign(body))
    request = urllib.request.Request(  # noqa: S310 (the params model allows http(s) only)
        url, data=body, method="POST", headers=sent
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raw = exc.read(RESPONSE_KEPT)
        answer = raw.decode(errors="replace")
        first = response_first_line(answer)
        detail = f"webhook {url} answered {exc.code} {exc.reason}" + (f": {first}" if first else "")
        retryable = exc.code in _RETRYABLE_STATUSES or exc.code >= 500
        failure = NotificationError if retryable else NotificationRejected
        error = failure(detail, status=exc.code)
        if answer.strip():
            # The message is what history, the feed and the failures panel show: a receiver's
            # error page would fill them. The body rides in the traceback, for the task page.
            kind = exc.headers.get("Content-Type", "") if exc.headers else ""
            error.add_note(f"{RESPONSE_NOTE} ({kind or 'no type'}, {len(raw)} bytes):\n{answer}")
        raise error from exc
    except OSError as exc:  # URLError, a timeout, a refused or reset connection
        reason = getattr(exc, "reason", exc)
        raise NotificationError(f"webhook {url} unreachable: {reason}") from exc
