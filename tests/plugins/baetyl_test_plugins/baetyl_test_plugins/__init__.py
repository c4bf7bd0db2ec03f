"""Plug-ins of every Baetyl-Py plug-in point, registered by this package's entry points
(pyproject.toml): what the plug-in tests choose by name, and docs/plugins.md's worked example.

For tests only: `test-header` trusts a header anyone can send.
"""
