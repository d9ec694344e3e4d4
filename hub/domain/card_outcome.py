"""What the budtender reads when a card payment does not go through: a plain reason and what to do next.

Processors answer with ISO 8583 response codes ("51"); terminals add their own ("1012" canceled on the
PIN pad, "2008" terminal in use — Dejavoo SPIn "Error Codes and Messages"). The raw text ("INSUFF FUNDS")
is never shown as is: customers stand at the counter and read the screen too.
"""

from __future__ import annotations

import msgspec

CardState = str  # "waiting" | "approved" | "declined" | "timed_out" | "cancelled" | "recovering"


class CardMessage(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    next_step: str

    @property
    def text(self) -> str:
        return f"{self.reason} {self.next_step}"


# ISO 8583-1987 response codes (field 39) most often seen on PIN-debit declines
_DECLINES: dict[str, CardMessage] = {
    "51": CardMessage(
        reason="The bank declined the card: not enough money in the account.",
        next_step="Ask for another card, pay part in cash, or pay all in cash.",
    ),
    "55": CardMessage(reason="The PIN was not accepted.", next_step="Let the customer try the card again."),
    "75": CardMessage(
        reason="Too many wrong PIN tries: the bank has locked the card for now.",
        next_step="Ask for another card or cash.",
    ),
    "54": CardMessage(reason="The card has expired.", next_step="Ask for another card or cash."),
    "61": CardMessage(
        reason="The card's daily limit is reached.",
        next_step="Try a smaller amount with cash for the rest, or cash.",
    ),
    "65": CardMessage(
        reason="The card's daily limit is reached.",
        next_step="Try a smaller amount with cash for the rest, or cash.",
    ),
    "57": CardMessage(
        reason="The bank does not allow this card here.", next_step="Ask for another card or cash."
    ),
    "2008": CardMessage(
        reason="The terminal is busy with another payment.",
        next_step="Wait a moment, then try the card again.",
    ),
    "0001": CardMessage(
        reason="Only part of the amount was approved, so it was given back.",
        next_step="Ask for another card or cash.",
    ),
}
_GENERIC = CardMessage(reason="The bank declined the card.", next_step="Ask for another card or cash.")


def declined(code: str) -> CardMessage:
    return _DECLINES.get(code.strip(), _GENERIC)


def cancelled() -> CardMessage:
    return CardMessage(
        reason="The payment was cancelled at the terminal; nothing was charged.",
        next_step="Try the card again or take cash.",
    )


def offline() -> CardMessage:
    return CardMessage(
        reason="The card terminal is offline; nothing was charged.", next_step="Take cash for this sale."
    )


def timed_out(outcome: str) -> CardMessage:
    """The terminal did not answer in time; ``outcome`` is what it said afterwards."""
    if outcome == "not_charged":
        return CardMessage(
            reason="The terminal did not answer in time. It confirms nothing was charged.",
            next_step="Try the card again or take cash.",
        )
    return CardMessage(
        reason="The terminal did not answer in time and its outcome is unknown.",
        next_step="Check the terminal's screen and its batch before charging again; take cash if unsure.",
    )
