"""Starting the service: checks who it may be open to, binds the socket (``port`` 0: a free one), says
where it listens, and runs uvicorn: in this process (one worker; the model is loaded before the
socket is announced) or as ``workers`` processes sharing the socket, each loading the model through
:func:`facelivt.serve.app.app_from_env` with the config in :data:`~facelivt.serve.config.CONFIG_ENV`.

SIGTERM (or Ctrl-C) stops taking connections, lets the requests in flight finish, drains the
micro-batcher and exits with status 0."""
from __future__ import annotations

import logging
import os
import signal
import socket
from dataclasses import dataclass
from typing import Callable

from facelivt.errors import InvalidInputError
from facelivt.extras import require
from facelivt.serve.app import create_app
from facelivt.serve.config import CONFIG_ENV, ServeConfig
from facelivt.serve.keys import KeyStore, default_keys_path

log = logging.getLogger(__name__)

#: Seconds the requests in flight get to finish after SIGTERM, on top of the request time limit.
DRAIN_MARGIN = 5


@dataclass(frozen=True)
class Listening:
    """Where the service listens: ``url``, ``host``, ``port``, the ``pid`` of the serving (parent)
    process, the ``workers``, and whether API keys are needed (``keys``)."""

    url: str
    host: str
    port: int
    pid: int
    workers: int
    keys: bool

    def to_dict(self) -> dict:
        return {"url": self.url, "host": self.host, "port": self.port, "pid": self.pid, "workers": self.workers,
                "keys": self.keys}


def check_exposure(config: ServeConfig) -> bool:
    """Whether API keys are needed (the key store holds an active key). Without one, a host other than
    loopback is refused: anyone who could reach the port could use and change the galleries."""
    keys = KeyStore(config.keys if config.keys else default_keys_path()).any_active()
    if not keys and not config.loopback:
        raise InvalidInputError(
            f"refusing to listen on {config.host}: no API key is configured, so anyone who reaches the port could "
            "use and change the galleries; create one with `facelivt serve keys create --name NAME --scope write` "
            "or listen on 127.0.0.1 (the default)")
    if not keys:
        log.warning("no API key configured: the service is open to this machine only (%s) and needs no key",
                    config.host)
    return keys


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(config: ServeConfig, announce: Callable[[Listening], None]) -> int:
    """Run the service until SIGTERM / SIGINT; ``announce`` is called once it listens. Returns 0."""
    uvicorn = require("uvicorn", "facelivt serve")
    keys = check_exposure(config)
    common = dict(host=config.host, port=config.port, workers=config.workers, log_level="warning",
                  access_log=False, lifespan="on", server_header=False,
                  timeout_graceful_shutdown=int(config.request_timeout) + DRAIN_MARGIN)
    if config.workers == 1:
        uv_config = uvicorn.Config(create_app(config), **common)
    else:
        os.environ[CONFIG_ENV] = config.to_json()
        uv_config = uvicorn.Config("facelivt.serve.app:app_from_env", factory=True, **common)
    sock = uv_config.bind_socket()
    sock.listen(uv_config.backlog)  # connections made as soon as it is announced wait in the backlog, not refused
    port = sock.getsockname()[1]
    announce(Listening(url_of(config.host, port), config.host, port, os.getpid(), config.workers, keys))
    previous = signal.signal(signal.SIGTERM, _stopped)  # uvicorn raises the signal again once it has drained
    try:
        if config.workers == 1:
            uvicorn.Server(uv_config).run(sockets=[sock])
        else:
            multiprocess = require("uvicorn.supervisors", "facelivt serve --workers")
            multiprocess.Multiprocess(uv_config, sockets=[sock]).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        _close(sock)
    return 0


def _stopped(signum, frame) -> None:
    """SIGTERM after uvicorn's own handler drained the requests: nothing left to do but return."""
    log.info("stopped by signal %d", signum)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
