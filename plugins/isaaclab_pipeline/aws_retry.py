"""Transient AWS errors and their retry: what a retry with backoff can cure (throttling, HTTP 429/5xx, timeouts,
dropped connections), full-jitter exponential backoff, and a retrying call. Used by the backends, the trigger and
resolve."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Transient AWS errors: what a retry with backoff can cure (throttling, 5xx, timeouts, dropped connections).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})
TRANSIENT_CODES = THROTTLING_CODES | frozenset({
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "ServiceUnavailable",
    "ServiceUnavailableException", "ServerException", "ClientException.Timeout", "IDPCommunicationError",
})


def is_transient(exc: BaseException) -> bool:
    """True for an AWS error a retry can cure: throttling, HTTP 429/5xx, timeouts, connection errors."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in TRANSIENT_CODES or (isinstance(status, int) and (status == 429 or status >= 500)):
            return True
        if code:
            return False  # an answer with an error code: AccessDenied, NoSuchBucket, ValidationError... stays
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError, ReadTimeoutError
    except ImportError:  # pragma: no cover - botocore is always there with the amazon provider
        return isinstance(exc, (TimeoutError, ConnectionError))
    return isinstance(exc, (BotoConnectionError, HTTPClientError, ReadTimeoutError, TimeoutError, ConnectionError))


def backoff_delay(attempt: int, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap_s, base_s * 2 ** attempt))


def retry_transient[T](call: Callable[[], T], *, attempts: int = 6, base_s: float = 1.0, cap_s: float = 30.0,
                    what: str = "AWS call", sleep: Callable[[float], Any] = time.sleep) -> T:
    """Run ``call``, retrying transient errors (:func:`is_transient`) with jittered exponential backoff.

    :raises Exception: the last transient error after ``attempts`` tries, or the first other error at once.
    """
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            delay = backoff_delay(attempt, base_s, cap_s)
            log.warning("%s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__, exc, attempt + 1,
                        attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")
