"""Request signatures between the store and its e-commerce channels: HMAC-SHA256 of ``timestamp + "." +
body`` with the channel's shared secret, in the style of Stripe's and Shopify's webhook signatures.

Headers: ``X-Storehub-Channel`` (channel id), ``X-Storehub-Timestamp`` (Unix seconds) and
``X-Storehub-Signature: sha256=<hex>``. A request older or newer than the allowed skew is refused, so a
captured request cannot be replayed later; within the window the caller remembers each signature once.
Pure functions: the clock is passed in.
"""

from __future__ import annotations

import hashlib
import hmac

from hub.domain.catalog import Refusal

MAX_SKEW_SECONDS = 300  # five minutes either way
HEADER_CHANNEL = "x-storehub-channel"
HEADER_TIMESTAMP = "x-storehub-timestamp"
HEADER_SIGNATURE = "x-storehub-signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(channel: str, secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        HEADER_CHANNEL: channel,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature(secret, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str, timestamp: str, given: str, body: bytes, now: float, max_skew: int = MAX_SKEW_SECONDS
) -> Refusal | None:
    """None when the signature is the channel's and the timestamp is fresh; otherwise why not."""
    # ASCII digits only: int() would also take other scripts' digits and surrounding blanks
    if not (timestamp.isascii() and timestamp.lstrip("-").isdigit()):
        return Refusal(code="bad_timestamp", message=f"{HEADER_TIMESTAMP} must be Unix seconds.")
    ts = int(timestamp)
    if abs(now - ts) > max_skew:
        return Refusal(
            code="stale_timestamp",
            message=f"The request's timestamp is more than {max_skew} s from the store's clock.",
        )
    # bytes on both sides: compare_digest refuses a str with non-ASCII characters (a TypeError, a 500)
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(signature(secret, ts, body).encode(), given_bytes):
        return Refusal(code="bad_signature", message="The signature does not match the body and timestamp.")
    return None
