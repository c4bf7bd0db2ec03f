"""baetyl-core: the edge agent process (node, sync and engine modules)."""
