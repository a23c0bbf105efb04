"""The REST gateway (SPEC §3, §4): an ASGI app served by hypercorn on Trio."""
