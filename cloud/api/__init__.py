"""The REST facade (aiohttp): routes, request parsing, auth and the error mapping of DESIGN §6."""
