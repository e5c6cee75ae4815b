"""Helpers of the service tests (tests/serve): a real ``python -m facelivt serve`` process on a free
loopback port, with the committed test weights (trained on real faces) and a gallery root of the test."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "tests" / "deploy" / "weights" / "facelivt_s_celeba.fp16.safetensors"
SHARED = REPO.parent / "shared" / "data"
CELEBA = SHARED / "celeba_subset"
ALIGNED = SHARED / "celeba_subset_112"
START_TIMEOUT = 240  # seconds for the model to load and the port to open on a busy CI machine


@dataclass
class Server:
    """A running service: its ``url``, process and gallery ``root``; ``stderr`` is its log file."""

    url: str
    proc: subprocess.Popen
    root: Path
    stderr: Path
    keys: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)


def server_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start_server(folder: Path, *options: str, keys: Path | None = None) -> Server:
    """Start ``facelivt serve --port 0 --json`` with the test weights in ``folder`` (its galleries in
    ``folder/galleries``) and wait for its start-up record."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = keys or folder / "keys.sqlite"
    stderr = folder / "server.log"
    cmd = [sys.executable, "-m", "facelivt", "serve", "--port", "0", "--json", "--model", "facelivt_s",
           "--weights", str(WEIGHTS), "--gallery", str(folder / "galleries"), "--keys", str(keys), *options]
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=folder, env=server_env(), text=True)
    line = _first_line(proc)
    if not line:
        proc.wait(30)
        raise AssertionError(f"the server did not start (exit {proc.returncode}):\n{stderr.read_text()[-3000:]}")
    record = json.loads(line)
    assert record["pid"] == proc.pid
    with socket.create_connection((record["host"], record["port"]), timeout=30):  # announced: it listens
        pass
    server = Server(record["url"], proc, folder / "galleries", stderr, keys)
    wait_ready(server)
    return server


def _first_line(proc: subprocess.Popen) -> str:
    """The first line the server prints (its start-up record), or '' when it exits first."""
    return proc.stdout.readline().strip()


def wait_ready(server: Server, timeout: float = START_TIMEOUT) -> None:
    """Poll /v1/health until it answers 200 (every worker process loads its model first)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert server.proc.poll() is None, server.log()[-3000:]
        try:
            if httpx.get(server.url + "/v1/health", timeout=10).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not become ready:\n{server.log()[-3000:]}")


def upload(path: Path, field: str = "image") -> tuple:
    return (field, (path.name, path.read_bytes(), "image/jpeg"))
