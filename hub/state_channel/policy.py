"""Per-jurisdiction reporting policy, as data (state-systems.md §1.7).

``deadline`` is how long a sale may wait for the state before it is overdue (what the backlog alert and the
back office compare against); the actor always sends as soon as the state answers, whatever the deadline.
``sell_while_down`` says what the register may still sell while the state system or its registry is
unreachable; it is shown on the back office's state page.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec

SellWhileDown = dict[str, str]


class ReportingPolicy(msgspec.Struct, frozen=True, kw_only=True):
    jurisdiction: str
    mode: str  # "real-time" | "within-deadline" | "weekly-upload"
    deadline: timedelta
    sell_while_down: dict[str, str]
    source: str


_REALTIME_SOURCE = (
    "Dutchie disallows batch mode in MD, CO, OK, MT, MO, MA, MI, DC, MN, WV "
    "(support.dutchie.com 12882287944595)"
)
_ADULT_YES_MEDICAL_CACHED = {
    "adult": "yes: reported when the state answers again",
    "medical": "only with a registry answer cached in the last 60 minutes",
}

POLICIES: dict[str, ReportingPolicy] = {
    "CA": ReportingPolicy(
        jurisdiction="CA",
        mode="within-deadline",
        deadline=timedelta(hours=24),
        sell_while_down=_ADULT_YES_MEDICAL_CACHED,
        source="Metrc CA supplemental guide: sales entered within 24 hours of occurrence",
    ),
    "OH": ReportingPolicy(
        jurisdiction="OH",
        mode="real-time",
        deadline=timedelta(minutes=5),
        sell_while_down={"medical": "yes: reported when the state answers again"},
        source="Ohio: dispensing transmitted within five minutes (uzio.com/ohio-cannabis-laws)",
    ),
    "IL": ReportingPolicy(
        jurisdiction="IL",
        mode="real-time",
        deadline=timedelta(minutes=15),
        sell_while_down=_ADULT_YES_MEDICAL_CACHED,
        source="68 Ill. Adm. Code 1291.310: real-time POS",
    ),
    "WA": ReportingPolicy(
        jurisdiction="WA",
        mode="weekly-upload",
        deadline=timedelta(days=7),
        sell_while_down={"adult": "yes", "medical": "yes"},
        source="lcb.wa.gov/mjtrace/reporting: CCRS weekly",
    ),
}
for _code in ("MD", "CO", "OK", "MT", "MO", "MA", "MI", "DC", "MN", "WV"):
    POLICIES[_code] = ReportingPolicy(
        jurisdiction=_code,
        mode="real-time",
        deadline=timedelta(minutes=15),
        sell_while_down=_ADULT_YES_MEDICAL_CACHED,
        source=_REALTIME_SOURCE,
    )

# Where nothing is known: treat as real time, the strictest reading.
DEFAULT = ReportingPolicy(
    jurisdiction="*",
    mode="real-time",
    deadline=timedelta(minutes=15),
    sell_while_down=_ADULT_YES_MEDICAL_CACHED,
    source="default: the strictest reading",
)


def policy_for(jurisdiction: str) -> ReportingPolicy:
    return POLICIES.get(jurisdiction.upper(), DEFAULT)
