"""The names both ends agree on: subjects, the stream, the catalogue bucket, message ids.

Upstream (store → HQ) every subject starts ``chain.<chain>.<store>.``, so a store's NATS permissions can be
one line (``chain.<chain>.<store>.>``); downstream (HQ → store) each store reads one key of the chain's
catalogue bucket, named after the store.
"""

from __future__ import annotations


def events_subject(chain: str, store: str) -> str:
    return f"chain.{chain}.{store}.events"


def status_subject(chain: str, store: str) -> str:
    return f"chain.{chain}.{store}.status"


def store_subjects(chain: str, store: str) -> str:
    return f"chain.{chain}.{store}.>"


def stream_name(chain: str) -> str:
    return f"CHAIN_{chain}"


def stream_subjects(chain: str) -> list[str]:
    return [f"chain.{chain}.*.events", f"chain.{chain}.*.status"]


def catalogue_bucket(chain: str) -> str:
    return f"CHAIN_{chain}_CATALOGUE"


def catalogue_get_subject(chain: str, store: str) -> str:
    """The direct-get subject of the store's key (JetStream KV: ``$JS.API.DIRECT.GET.KV_<b>.$KV.<b>.<key>``)."""
    b = catalogue_bucket(chain)
    return f"$JS.API.DIRECT.GET.KV_{b}.$KV.{b}.{store}"


def inbox_prefix(store: str) -> str:
    # each store's replies come to its own inbox prefix, so it may subscribe to its replies only
    return f"_INBOX_{store}"


def msg_id(store: str, seq: int) -> str:
    """JetStream's ``Nats-Msg-Id``: a resend of the same event inside the duplicate window is dropped."""
    return f"{store}:{seq}"


def parse_subject(subject: str) -> tuple[str, str, str]:
    """``chain.<chain>.<store>.<kind>`` → (chain, store, kind)."""
    parts = subject.split(".")
    if len(parts) != 4 or parts[0] != "chain":
        raise ValueError(f"not a chain subject: {subject!r}")
    return parts[1], parts[2], parts[3]
