"""The dispatcher: partition consumers, routing, retries, dead letters and replay.

Entry points (import them from their modules; this package imports nothing so
that actors may use its settings and metrics without import cycles):

* :func:`notifactor.dispatcher.runner.run_dispatcher` — the supervised subtree.
* :class:`notifactor.dispatcher.replay.ReplayService` — DLQ listing and replay.
* :mod:`notifactor.dispatcher.cli_dlq` — ``notifactor dlq list|replay``.

See ``docs/dispatcher.md``.
"""
