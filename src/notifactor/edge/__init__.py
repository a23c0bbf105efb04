"""The WebSocket edge (SPEC §5): listener, session actors, per-gateway delivery stream.

Entry point: :func:`notifactor.edge.runner.run_ws_edge` (a supervised start
function) or :class:`notifactor.edge.runner.WsEdge` when the caller wants the
bound port. See ``docs/websocket.md`` for the client-facing protocol.
"""
