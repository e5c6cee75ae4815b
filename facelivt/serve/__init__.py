"""``facelivt serve``: the face-recognition service (HTTP API, web page, API keys, audit log)."""
