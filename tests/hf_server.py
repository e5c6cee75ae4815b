"""A small, real Hugging Face Hub look-alike on 127.0.0.1, for download tests that must never reach huggingface.co.

It speaks the "resolve" protocol the way huggingface_hub 2.4.0 expects (see its ``file_download.py``):

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``
  - LFS file: ``302`` to ``/blobs/{sha256}?repo_id=..&filename=..`` on a second listener (``hub.cdn_endpoint``, a
    different origin, like cdn-lfs.hf.co), with ``X-Repo-Commit``, ``X-Linked-Etag: "<sha256>"``, ``X-Linked-Size``,
    ``ETag`` (the git sha1 of the LFS pointer file, as on the Hub) and ``Location``. Because the origin differs,
    huggingface_hub does not follow the redirect on ``HEAD`` (one HEAD per metadata call) and drops the
    ``authorization`` header for the blob ``GET``, as against the real Hub. ``HubServer(cdn=False)`` serves blobs
    on the main origin instead: huggingface_hub then follows the redirect on ``HEAD`` (two HEADs), and the blob
    responses carry the Hub headers too so the metadata still resolves.
  - regular (git) file: ``200`` with ``ETag: "<git blob sha1>"``, ``X-Repo-Commit`` and ``Content-Length``.
  - unknown repo / revision / file: ``404`` with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` /
    ``EntryNotFound`` (the last with ``X-Repo-Commit``, as the Hub sends it).
* ``GET`` of a blob or file honours one ``Range: bytes=a-b`` (``206`` + ``Content-Range``; ``416`` when unsatisfiable).
* Plain files (``hub.add_plain``) at ``{endpoint}/{path}``, for generic https-style downloads.

Fault injection (``hub.set_fault`` / ``hub.set_plain_fault``), see ``FAULTS``. Body faults model a broken object at
an absolute byte offset, so a client's ``Range`` resume hits the same fault again (no progress), which is what makes
huggingface_hub give up instead of trickling forever:

* ``"corrupt"``: declared size and sha256 are the real ones; the body has the same length with a few bytes flipped.
* ``"truncate"``: declared size is real; the connection closes at offset ``len // 2`` (a resume from there gets the
  headers and no byte). ``times=1`` makes it a one-off drop that a resume recovers from.
* ``"stall"``: ``HEAD`` is normal; ``GET`` sends the headers and the bytes before offset ``STALL_OFFSET`` (16), then
  waits ``hub.stall_seconds`` (default 30) before sending the rest. Waits end early when the server closes.
* ``"slow_head"``: ``HEAD`` of the file waits ``hub.stall_seconds`` before answering.
* an ``int`` HTTP status: every request for the file answers it, with the Hub's ``X-Error-Code`` for that status
  (401 ``RepoNotFound``, 403 ``GatedRepo``, 404 ``EntryNotFound``, 5xx none; override with ``error_code=``).
* ``None`` clears the fault.

Tests import it like the other helpers (``tests/`` is on ``sys.path``)::

    from hf_server import HubServer, hub_server, released_bytes  # noqa: F401  (hub_server is a fixture)
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest

__all__ = [
    "FAULTS",
    "STALL_OFFSET",
    "HubServer",
    "fast_hf_client",
    "git_blob_sha1",
    "hub_server",
    "released_bytes",
]

FAULTS = ("corrupt", "truncate", "stall", "slow_head")
STALL_OFFSET = 16  # "stall" sends this many bytes of the file (fewer for a smaller file), then waits
_BODY_FAULTS = ("corrupt", "truncate", "stall")
_CHUNK = 64 * 1024
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HUB_DEFAULT = object()  # sentinel: the Hub's usual X-Error-Code for a status
_DEFAULT_ERROR_CODE = {401: "RepoNotFound", 403: "GatedRepo", 404: "EntryNotFound"}
_DEFAULT_ERROR_MESSAGE = {
    401: "Invalid username or password.",
    403: "Access to this model is restricted and you are not in the authorized list.",
    404: "Entry not found",
}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of ``data``: what the Hub sends as the ``ETag`` of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _corrupted(data: bytes) -> bytes:
    """Same length, a few bytes flipped (at 1/4, 1/2 and 3/4 of the file)."""
    out = bytearray(data)
    for i in sorted({len(out) // 4, len(out) // 2, 3 * len(out) // 4}):
        if i < len(out):
            out[i] ^= 0xFF
    return bytes(out)


class _Served:
    """One servable object (a repo file or a plain file) and its fault."""

    def __init__(self, data: bytes, *, lfs: bool) -> None:
        self.data = bytes(data)
        self.lfs = lfs
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.git_sha1 = git_blob_sha1(_lfs_pointer(self.sha256, len(self.data)) if lfs else self.data)
        self.fault: Any = None
        self.times: int | None = None  # responses the fault still applies to (None: forever)
        self.error_code: Any = _HUB_DEFAULT

    def take_fault(self, lock: threading.Lock, *, applies) -> Any:
        """The fault for this response if ``applies(fault)``, consuming one of its ``times``."""
        with lock:
            fault = self.fault
            if fault is None or not applies(fault):
                return None
            if self.times is not None:
                self.times -= 1
                if self.times <= 0:
                    self.fault, self.times = None, None
            return fault


class _Repo:
    def __init__(self, commit: str) -> None:
        self.commit = commit
        self.refs = {"main"}
        self.files: dict[str, _Served] = {}


class HubServer:
    """A Hub look-alike on ``127.0.0.1`` (OS-chosen ports); use as ``with HubServer() as hub: ...``."""

    def __init__(self, *, cdn: bool = True, stall_seconds: float = 30.0) -> None:
        self.cdn = cdn
        self.stall_seconds = stall_seconds
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._plain: dict[str, _Served] = {}
        self._log: list[tuple[str, str]] = []
        self._log_headers: list[dict[str, str]] = []
        self._closing = threading.Event()
        self._conns: set[socket.socket] = set()
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> HubServer:
        if self._servers:
            return self
        for _ in range(2 if self.cdn else 1):
            server = _Server(("127.0.0.1", 0), _Handler)
            server.hub = self
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="HubServer", daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving: wakes stalled handlers, closes open connections, releases the ports. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        for server in self._servers:
            server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for server in self._servers:
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: pass it as ``endpoint=`` to huggingface_hub."""
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        """Origin the LFS blobs are served from (the main endpoint when ``cdn=False``)."""
        return f"http://127.0.0.1:{self._servers[-1].server_address[1]}"

    # ------------------------------------------------------------------ content
    def add_repo(self, repo_id: str, *, commit: str | None = None) -> str:
        """Create ``repo_id`` (idempotent) and return its commit hash; default: a fixed hash derived from the id."""
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                if commit is None:
                    commit = hashlib.sha1(f"hubserver:{repo_id}".encode()).hexdigest()
                if not _HEX40.fullmatch(commit):
                    raise ValueError(f"commit must be 40 lowercase hex characters, got {commit!r}")
                repo = self._repos[repo_id] = _Repo(commit)
            elif commit is not None and commit != repo.commit:
                raise ValueError(f"{repo_id} already has commit {repo.commit}, not {commit}")
            return repo.commit

    def commit(self, repo_id: str) -> str:
        """The repo's (only) commit hash: every revision name of the repo resolves to it."""
        return self._repos[repo_id].commit

    def add_file(self, repo_id: str, filename: str, data: bytes, *, lfs: bool = True, revision: str = "main") -> None:
        """Serve ``data`` as ``filename`` of ``repo_id``. ``revision`` (a branch/tag name, or a 40-hex commit for a
        new repo) becomes a name that resolves to the repo's commit; files are shared by all revision names."""
        commit = revision if _HEX40.fullmatch(revision) else None
        self.add_repo(repo_id, commit=commit)
        with self._lock:
            repo = self._repos[repo_id]
            if commit is None:
                repo.refs.add(revision)
            repo.files[filename] = _Served(data, lfs=lfs)

    def add_plain(self, path: str, data: bytes, *, declare_sha256: bool = False) -> str:
        """Serve ``data`` at ``{endpoint}/{path}`` (HEAD/GET, Range). With ``declare_sha256`` the responses carry
        ``ETag`` and ``X-Linked-Etag`` = ``"<sha256>"``. Returns the full URL."""
        key = "/" + path.lstrip("/")
        served = _Served(data, lfs=False)
        served.declare_sha256 = declare_sha256  # type: ignore[attr-defined]
        with self._lock:
            self._plain[key] = served
        return self.endpoint + quote(key)

    def url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        """The resolve URL (same as ``hf_hub_url(repo_id, filename, revision=revision, endpoint=hub.endpoint)``)."""
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"

    def sha256(self, repo_id: str, filename: str) -> str:
        return self._repos[repo_id].files[filename].sha256

    # ------------------------------------------------------------------ faults
    def set_fault(self, repo_id: str, filename: str, fault: Any, *, times: int | None = None,
                  error_code: Any = _HUB_DEFAULT) -> None:
        """Inject ``fault`` (one of ``FAULTS``, an int HTTP status, or ``None`` to clear) for one repo file.
        ``times``: number of affected responses before the fault clears itself (default: until cleared).
        ``error_code``: ``X-Error-Code`` sent with a status fault (default: the Hub's for that status; None: none)."""
        self._set_fault(self._repos[repo_id].files[filename], fault, times, error_code)

    def set_plain_fault(self, path: str, fault: Any, *, times: int | None = None,
                        error_code: Any = _HUB_DEFAULT) -> None:
        """``set_fault`` for a file added with ``add_plain``."""
        self._set_fault(self._plain["/" + path.lstrip("/")], fault, times, error_code)

    def _set_fault(self, served: _Served, fault: Any, times: int | None, error_code: Any) -> None:
        if fault is not None and fault not in FAULTS and not (
            isinstance(fault, int) and not isinstance(fault, bool) and 400 <= fault <= 599
        ):
            raise ValueError(f"unknown fault {fault!r}: use one of {FAULTS}, an HTTP status 400-599 or None")
        with self._lock:
            served.fault = fault
            served.times = None if fault is None else times
            served.error_code = error_code

    # ------------------------------------------------------------------ request log
    @property
    def requests(self) -> list[tuple[str, str]]:
        """Snapshot of the ``(method, path)`` of every request so far (path as sent, query included)."""
        with self._lock:
            return list(self._log)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Headers of every request so far, aligned with ``requests`` (names lower-cased)."""
        with self._lock:
            return [dict(h) for h in self._log_headers]

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        return sum(
            1
            for m, p in self.requests
            if (method is None or m == method.upper()) and (path_contains is None or path_contains in p)
        )

    def reset_log(self) -> None:
        with self._lock:
            self._log.clear()
            self._log_headers.clear()

    def _record(self, method: str, path: str, headers) -> None:
        with self._lock:
            self._log.append((method, path))
            self._log_headers.append({k.lower(): v for k, v in headers.items()})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False
    hub: HubServer

    def handle_error(self, request, client_address) -> None:  # client went away mid-response: not an error here
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "HubServer/1.0"
    server: _Server

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format, *args) -> None:  # silence stderr
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.hub._lock:
            self.server.hub._conns.add(self.connection)

    def finish(self) -> None:
        with self.server.hub._lock:
            self.server.hub._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, *, head: bool) -> None:
        hub = self.server.hub
        hub._record(self.command, self.path, self.headers)
        try:
            self._route(head=head)
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True

    def _reply(self, status: int, headers: dict[str, str], body: bytes = b"", *, head: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str, *, head: bool, extra: dict | None = None) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8", **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        if message:
            headers["X-Error-Message"] = message
        self._reply(status, headers, json.dumps({"error": message}).encode(), head=head)

    # ------------------------------------------------------------------ routing
    def _route(self, *, head: bool) -> None:
        hub = self.server.hub
        split = urlsplit(self.path)
        path = unquote(split.path)
        with hub._lock:
            plain = hub._plain.get(path)
        if plain is not None:
            return self._serve_plain(plain, head=head)
        if path.startswith("/blobs/"):
            return self._serve_blob(path[len("/blobs/"):], parse_qs(split.query), head=head)
        if "/resolve/" in split.path and (not hub.cdn or self.server is hub._servers[0]):
            return self._serve_resolve(split.path, head=head)
        self._error(404, None, "Not Found", head=head)

    def _status_fault(self, served: _Served, *, head: bool, commit: str | None) -> bool:
        fault = served.take_fault(self.server.hub._lock, applies=lambda f: isinstance(f, int))
        if fault is None:
            return False
        code = served.error_code
        if code is _HUB_DEFAULT:
            code = _DEFAULT_ERROR_CODE.get(fault)
        extra = {"X-Repo-Commit": commit} if commit and fault == 404 else {}
        self._error(fault, code, _DEFAULT_ERROR_MESSAGE.get(fault, "Internal Error"), head=head, extra=extra)
        return True

    def _slow_head(self, served: _Served, *, head: bool) -> None:
        if head and served.take_fault(self.server.hub._lock, applies=lambda f: f == "slow_head"):
            self.server.hub._closing.wait(self.server.hub.stall_seconds)

    def _serve_resolve(self, raw_path: str, *, head: bool) -> None:
        hub = self.server.hub
        left, _, right = raw_path.partition("/resolve/")
        repo_id = unquote(left.lstrip("/"))
        raw_rev, _, raw_file = right.partition("/")
        revision, filename = unquote(raw_rev), unquote(raw_file)
        with hub._lock:
            repo = hub._repos.get(repo_id)
            served = repo.files.get(filename) if repo is not None else None
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found", head=head)
        if revision not in repo.refs and revision != repo.commit:
            return self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, head=head)
        if served is None:
            return self._error(404, "EntryNotFound", "Entry not found", head=head,
                               extra={"X-Repo-Commit": repo.commit})
        if self._status_fault(served, head=head, commit=repo.commit):
            return
        self._slow_head(served, head=head)
        hub_headers = {"X-Repo-Commit": repo.commit}
        if served.lfs:
            location = (
                f"{hub.cdn_endpoint}/blobs/{served.sha256}"
                f"?repo_id={quote(repo_id, safe='')}&filename={quote(filename, safe='')}"
            )
            body = f"Found. Redirecting to {location}".encode()
            hub_headers.update({
                "Location": location,
                "ETag": f'"{served.git_sha1}"',
                "X-Linked-Etag": f'"{served.sha256}"',
                "X-Linked-Size": str(len(served.data)),
                "Accept-Ranges": "bytes",
                "Content-Type": "text/plain; charset=utf-8",
            })
            return self._reply(302, hub_headers, body, head=head)
        hub_headers["ETag"] = f'"{served.git_sha1}"'
        self._send_data(served, hub_headers, head=head, filename=filename)

    def _serve_blob(self, sha256: str, query: dict[str, list[str]], *, head: bool) -> None:
        hub = self.server.hub
        repo_id = query.get("repo_id", [""])[0]
        filename = query.get("filename", [""])[0]
        with hub._lock:
            repo = hub._repos.get(repo_id)
            served = repo.files.get(filename) if repo is not None else None
        if served is None or not served.lfs or served.sha256 != sha256:
            return self._error(404, None, "Not Found", head=head)
        if self._status_fault(served, head=head, commit=None):
            return
        headers = {"ETag": f'"{sha256}"'}
        if not hub.cdn:  # the HEAD call follows a same-origin redirect: the final response must carry the metadata
            headers.update({
                "X-Repo-Commit": repo.commit,
                "X-Linked-Etag": f'"{sha256}"',
                "X-Linked-Size": str(len(served.data)),
            })
        self._send_data(served, headers, head=head, filename=filename)

    def _serve_plain(self, served: _Served, *, head: bool) -> None:
        if self._status_fault(served, head=head, commit=None):
            return
        self._slow_head(served, head=head)
        headers = {}
        if getattr(served, "declare_sha256", False):
            headers = {"ETag": f'"{served.sha256}"', "X-Linked-Etag": f'"{served.sha256}"'}
        self._send_data(served, headers, head=head, filename=self.path.rsplit("/", 1)[-1].split("?")[0])

    # ------------------------------------------------------------------ bodies
    def _send_data(self, served: _Served, headers: dict[str, str], *, head: bool, filename: str) -> None:
        hub = self.server.hub
        data = served.data
        size = len(data)
        status, start, end = 200, 0, size
        rng = self.headers.get("Range")
        if rng is not None and not head:
            parsed = _parse_range(rng, size)
            if parsed == "unsatisfiable":
                return self._error(416, None, "Range Not Satisfiable", head=head,
                                   extra={"Content-Range": f"bytes */{size}"})
            if parsed is not None:
                status, (start, end) = 206, parsed
                headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}"}
        base = filename.rsplit("/", 1)[-1]
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(base)}; filename=\"{base}\";",
            **headers,
        }
        if head:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            return
        fault = served.take_fault(hub._lock, applies=lambda f: f in _BODY_FAULTS)
        body = _corrupted(data) if fault == "corrupt" else data
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        if fault == "truncate":
            cut = size // 2
            self._write(body, start, max(start, min(end, cut)))
            if end > cut:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
            return
        if fault == "stall":
            stall_at = min(STALL_OFFSET, size)
            if start <= stall_at < end:
                self._write(body, start, stall_at)
                self.wfile.flush()
                if hub._closing.wait(hub.stall_seconds):
                    self.close_connection = True
                    return
                start = stall_at
        self._write(body, start, end)

    def _write(self, body: bytes, start: int, end: int) -> None:
        view = memoryview(body)
        for pos in range(start, end, _CHUNK):
            self.wfile.write(view[pos:min(end, pos + _CHUNK)])


def _parse_range(value: str, size: int):
    """``(start, end)`` (end exclusive) for one ``bytes=`` range, ``None`` to ignore it, ``"unsatisfiable"``."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", value, re.IGNORECASE)
    if match is None:
        return None  # multiple ranges or garbage: serve the whole file, as many servers do
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


# ---------------------------------------------------------------------- pytest glue
@pytest.fixture
def hub_server():
    """A running ``HubServer`` for one test (closed afterwards)."""
    with HubServer() as hub:
        yield hub


def fast_hf_client(monkeypatch, *, timeout: float = 0.5, etag_timeout: float | None = None) -> list[float]:
    """Make huggingface_hub 2.4.0 fail fast against a faulty server, for one test.

    Sets the read timeouts it reads at call time: ``constants.HF_HUB_DOWNLOAD_TIMEOUT`` (blob GETs) to ``timeout``;
    ``constants.HF_HUB_ETAG_TIMEOUT`` (hf_hub_download's first HEAD, overriding its ``etag_timeout`` argument) and
    ``file_download._ETAG_RETRY_TIMEOUT`` (the hard-coded 60 s of its HEAD retry loop) to ``etag_timeout``
    (default: ``timeout``). Replaces the sleeps of its retry loops (1 s before each resumed GET in ``http_get``;
    1, 2, 4, 8, 8 s of HEAD backoff in ``utils._http``) with a recorder, and returns the list the requested sleep
    durations are appended to. ``get_hf_file_metadata``'s own ``timeout`` default is bound at import: pass
    ``timeout=`` to it explicitly.
    """
    etag_timeout = timeout if etag_timeout is None else etag_timeout
    import types

    from huggingface_hub import constants, file_download
    from huggingface_hub.utils import _http

    sleeps: list[float] = []
    fake_time = types.SimpleNamespace(sleep=sleeps.append)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", timeout)
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", etag_timeout)
    monkeypatch.setattr(file_download, "_ETAG_RETRY_TIMEOUT", etag_timeout)
    monkeypatch.setattr(file_download, "time", fake_time)
    monkeypatch.setattr(_http, "time", fake_time)
    return sleeps


@functools.lru_cache(maxsize=4)
def _released_bytes(path: str) -> bytes:
    import torch

    ref = torch.load(path, weights_only=True)
    buffer = io.BytesIO()
    torch.save(ref["state_dict"], buffer)
    return buffer.getvalue()


def released_bytes(reference_pt: Path) -> bytes:
    """The bytes of a checkpoint like the authors' release (a plain state_dict ``torch.save``d), built from a
    reference file of ``../shared/reference`` (a dict with ``variant``, ``state_dict``, ``input``, ``output``,
    ``output_deploy``). Deterministic; cached per path."""
    return _released_bytes(str(Path(reference_pt).resolve()))
