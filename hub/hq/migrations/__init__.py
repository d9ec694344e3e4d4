"""The HQ database schema as numbered SQL files, applied in order by hub/hq."""
