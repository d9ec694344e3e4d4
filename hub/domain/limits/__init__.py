"""Purchase limits: rules as data (``rules/XX.toml``), compiled by ``rules.py``, applied by ``engine.py``."""

from hub.domain.limits.engine import (
    LimitCustomer,
    LimitDecision,
    LimitItem,
    Violation,
    evaluate,
    history_window_start,
)
from hub.domain.limits.rules import (
    Jurisdiction,
    RuleError,
    available_jurisdictions,
    load_jurisdiction,
    store_jurisdiction,
)

__all__ = [
    "Jurisdiction",
    "LimitCustomer",
    "LimitDecision",
    "LimitItem",
    "RuleError",
    "Violation",
    "available_jurisdictions",
    "evaluate",
    "history_window_start",
    "load_jurisdiction",
    "store_jurisdiction",
]
