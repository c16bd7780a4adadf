"""The HTTP side of the server: the read-only JSON API under /api/v1 (`web.server`)."""
