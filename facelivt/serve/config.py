"""What a ``facelivt serve`` process runs with: one :class:`ServeConfig` (data, checked once), which the
command line builds and which travels to uvicorn's worker processes as JSON in an environment variable."""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass

from facelivt.cpu import check_threads
from facelivt.deploy.optimize import BACKENDS
from facelivt.errors import InvalidInputError

#: The environment variable through which uvicorn's worker processes get the config (JSON).
CONFIG_ENV = "FACELIVT_SERVE_CONFIG"
#: Hosts that reach this machine only (binding to them needs no API key).
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServeConfig:
    """Every setting of the service (see ``facelivt serve --help`` for each)."""

    model: str | None = None
    weights: str | None = None
    gallery: str = "galleries"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 32
    max_wait_ms: float = 20.0
    max_upload_mb: float = 20.0
    max_pixels: int = 40_000_000
    max_faces: int = 20
    request_timeout: float = 30.0
    cors_origins: tuple[str, ...] = ()
    keys: str | None = None  # None: FACELIVT_HOME/serve-keys.sqlite
    audit_log: str | None = None
    backend: str = "auto"
    device: str = "auto"
    threads: int | None = None
    quiet: bool = False
    json: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        _positive("--max-batch", self.max_batch, whole=True)
        _positive("--max-upload-mb", self.max_upload_mb)
        _positive("--max-pixels", self.max_pixels, whole=True)
        _positive("--max-faces", self.max_faces, whole=True)
        _positive("--request-timeout", self.request_timeout)
        check_threads(self.workers, "--workers")
        check_threads(self.threads, "--threads")
        if self.max_wait_ms < 0:
            raise InvalidInputError(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms}")
        if not 0 <= int(self.port) <= 65535:
            raise InvalidInputError(f"--port must be 0..65535, got {self.port}")
        if self.backend not in BACKENDS:
            raise InvalidInputError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def loopback(self) -> bool:
        """Whether :attr:`host` reaches this machine only."""
        return is_loopback(self.host)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServeConfig":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_env(cls) -> "ServeConfig":
        """The config a parent ``facelivt serve`` process left in :data:`CONFIG_ENV`."""
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise InvalidInputError(f"{CONFIG_ENV} is not set: start the service with `facelivt serve`")
        return cls.from_json(text)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.x.x.x, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _positive(option: str, value: float, whole: bool = False) -> None:
    if isinstance(value, bool) or value <= 0 or (whole and int(value) != value):
        kind = "a whole number" if whole else "a number"
        raise InvalidInputError(f"{option} must be {kind} above 0, got {value}")
