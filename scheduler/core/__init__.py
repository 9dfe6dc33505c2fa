"""The bottom of `scheduler/`: small pure helpers every room may use, importing no other room.

Secrets masked wherever task arguments are shown, JSON typed by people read strictly, the one
Redis client of a process with the project's key prefix, a run's duration as every interface
shows it, and the timestamped signatures of webhook bodies. `config/celery.py` imports this
package before Django is set up, so nothing here touches models or settings at import time.

Modules inside `scheduler/` import these by their full path; other apps import from here.
"""

from __future__ import annotations

from scheduler.core.formatting import result_duration
from scheduler.core.json_input import MalformedJSON, read_json
from scheduler.core.masking import (
    MASK,
    MaskSecretsFilter,
    configured_keys,
    holds_mask,
    mask,
    mask_serialised,
    masked,
    masked_text,
)
from scheduler.core.redis_connection import describe_redis_url, get_redis, redis_key
from scheduler.core.retries import RetryPolicy
from scheduler.core.signing import (
    SIGNATURE_TOLERANCE,
    SignatureError,
    signature_check,
    signature_header,
)

__all__ = [
    "MASK",
    "SIGNATURE_TOLERANCE",
    "MalformedJSON",
    "MaskSecretsFilter",
    "RetryPolicy",
    "SignatureError",
    "configured_keys",
    "describe_redis_url",
    "get_redis",
    "holds_mask",
    "mask",
    "mask_serialised",
    "masked",
    "masked_text",
    "read_json",
    "redis_key",
    "result_duration",
    "signature_check",
    "signature_header",
]
