"""evalstream server: scoring, runs and verdicts over gRPC.

The entry point is :func:`evalstream_server.app.main` (console script
``evalstream-server``); :func:`evalstream_server.app.build_server` builds a
server from a :class:`~evalstream_server.config.Config` for tests and embedding.
"""

__version__ = "0.1.0"
