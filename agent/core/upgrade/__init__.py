"""Agent self-upgrade with automatic rollback (decision #153)."""
