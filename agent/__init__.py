"""Baetyl-Py edge framework: baetyl-init, baetyl-core and the wire contract shared with cloud."""
