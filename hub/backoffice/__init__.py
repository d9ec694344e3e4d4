"""The back office and closing the day (issue 7): drawers, counts, returns, cash flags, readiness, Z reports,
incidents and the back-office pages; hub/backoffice/feature.py holds what the wiring hooks in."""
