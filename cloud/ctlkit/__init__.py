"""The parts of `baetylctl`: settings resolution, the HTTP client, manifests, commands, output.

A pure HTTP client of the REST API: it imports only the standard library, aiohttp and PyYAML, so
it starts fast and can be shipped to operators' machines without the cloud's dependencies.
"""
