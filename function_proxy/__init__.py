"""Baetyl-Py function proxy: routes /{app}/{function} calls to function runtimes; the runtime."""
