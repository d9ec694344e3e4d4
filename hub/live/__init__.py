"""The live protocol: frames, the session state machine (sans-I/O) and its trio-websocket server."""
