"""The WebSocket edge (SPEC §5): listener, session actors, per-gateway delivery stream.

Entry point: :class:`notifactor.edge.runner.WsEdge`, whose ``child_spec()``
puts the edge's subtree under the gateway supervisor. See ``docs/websocket.md`` for the client-facing protocol.
"""
