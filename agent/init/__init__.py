"""baetyl-init: activates a node, writes its certificates and config, starts baetyl-core."""
