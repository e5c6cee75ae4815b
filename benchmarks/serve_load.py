"""Load on ``facelivt serve``: ``POST /v1/embed`` of aligned 112x112 crops (``aligned=true``) and of raw
photos at 1, 8 and 32 concurrent clients, the micro-batching server (``--max-batch 32``) next to the same
server with micro-batching off (``--max-batch 1``), and the one-request-at-a-time row, all in one run.

    python benchmarks/serve_load.py                          # 800 requests or 24 s per row, 1, 8 and 32 clients
    python benchmarks/serve_load.py --requests 200 --seconds 10 --clients 1,32 --json serve_load.json
    python benchmarks/serve_load.py --quick                  # a handful of requests (the test's mode)

The script starts two real servers (``python -m facelivt serve --port 0 --json`` of this checkout,
loopback only, a throw-away gallery and keys file, no API key) as subprocesses, waits for
``/v1/health``, sends the requests (one asyncio loop, ``--clients`` keep-alive connections with one
request in flight on each; the multipart forms encoded once by ``httpx``, then sent as prepared HTTP/1.1
requests so that the client takes little of the cores it shares with the server; every answer parsed
and checked: one face, an embedding of the model's size), and stops the servers itself (SIGTERM, then
waits). ``--threads`` and ``--serve-arg`` pass options to both servers. Every row is bounded by
``--requests`` and ``--seconds``; it is measured in ``--segments`` turns, the two servers taking turns at
each number of clients, so that a change in the machine's background load falls on both alike.

Inputs: ``../shared/data/celeba_subset_112`` (crops aligned to the ArcFace template by MTCNN) and the
same photos from ``../shared/data/celeba_subset`` (longest side 320 px, each with a detected face),
spread over the identities, sent as their JPEG files; each request carries one image (``face=largest``).

The throughput tables give requests/s and p50 / p99 latency; ``x one at a time`` is a row's requests/s
over one client on the ``--max-batch 1`` server, ``x --max-batch 1`` over the ``--max-batch 1`` server
at the same number of clients. The model tables read the servers' ``/metrics`` before and after each row:
model calls, mean batch, and model milliseconds per image inside the server, next to the model's own
per-image time at batch 32 (and at 1 and 8, to tell the batch size's share from the rest) measured in this
process on the backend the server reports in
``/v1/health`` (``optimize_for_inference`` of the same model and weights, the same flip-sum embedding
call, servers idle). Client and server share this machine's cores: the CPU columns say how many cores
each used during the row (the client's asyncio loop included); ``model busy`` is the share of the row's
wall time the server's inference thread spent in model calls (near 100 %: the model is the bottleneck;
well below: the requests do not reach it fast enough).
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RAW = DATA / "celeba_subset"
ALIGNED = DATA / "celeba_subset_112"
WEIGHTS = REPO / "tests" / "deploy" / "weights" / "facelivt_s_celeba.fp16.safetensors"

from facelivt.cpu import cpu_capability  # noqa: E402  (this checkout: benchmarks/ sits beside the package)
from facelivt.deploy.optimize import optimize_for_inference  # noqa: E402
from facelivt.files import write_json  # noqa: E402
from facelivt.inference import FaceRecognizer  # noqa: E402
from facelivt.inference.images import load_image  # noqa: E402

# the server's metrics (facelivt/serve/metrics.py): model-call seconds and images (counters), batch sizes
MODEL_SECONDS = "facelivt_model_seconds"
MODEL_IMAGES = "facelivt_model_images"
BATCH_SIZE = "facelivt_batch_size"
BATCHED, SINGLE = "micro-batching (--max-batch 32)", "no batching (--max-batch 1)"
KINDS = {"aligned": "aligned 112x112 crops (aligned=true)", "raw": "raw photos (detect + align in the server)"}
START_TIMEOUT = 180.0
SMALL_BATCHES = (1, 8)  # the model's own per-image time at these batch sizes too (what batching gains)


@dataclass
class Row:
    """One load run (or several segments of it, added up): a server, a kind of input, a number of clients."""

    server: str
    kind: str
    clients: int
    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    model_calls: float = 0.0
    model_images: float = 0.0
    model_seconds: float = 0.0
    client_cpu: float = 0.0  # CPU seconds of this process (the client's loop)
    server_cpu: float | None = None  # CPU seconds of the server process (None: not readable here)
    errors: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list, repr=False)  # seconds, one per request

    def __add__(self, other: "Row") -> "Row":
        errors = {k: self.errors.get(k, 0) + other.errors.get(k, 0) for k in {**self.errors, **other.errors}}
        server_cpu = None if self.server_cpu is None or other.server_cpu is None else self.server_cpu + other.server_cpu
        return Row(self.server, self.kind, self.clients, self.requests + other.requests, self.failed + other.failed,
                   self.seconds + other.seconds, self.model_calls + other.model_calls,
                   self.model_images + other.model_images, self.model_seconds + other.model_seconds,
                   self.client_cpu + other.client_cpu, server_cpu, errors, self.latencies + other.latencies)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies) * 1000, q)) if self.latencies else 0.0

    @property
    def model_ms(self) -> float | None:
        return 1000 * self.model_seconds / self.model_images if self.model_images else None

    @property
    def mean_batch(self) -> float | None:
        return self.model_images / self.model_calls if self.model_calls else None

    @property
    def client_cores(self) -> float:
        return self.client_cpu / self.seconds if self.seconds else 0.0

    @property
    def server_cores(self) -> float | None:
        return None if self.server_cpu is None or not self.seconds else self.server_cpu / self.seconds

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "latencies"}
        return {**out, "rps": self.rps, "p50_ms": self.latency_ms(50), "p99_ms": self.latency_ms(99),
                "model_ms": self.model_ms, "mean_batch": self.mean_batch, "client_cores": self.client_cores,
                "server_cores": self.server_cores}


# ------------------------------------------------------------------ inputs
def inputs(count: int) -> dict[str, list[tuple[str, bytes]]]:
    """``count`` photos spread over the identities: their aligned crops and their raw photos (JPEG bytes)."""
    crops = sorted(ALIGNED.rglob("*.jpg"))
    if not crops:
        raise SystemExit(f"serve_load.py: no aligned crops in {ALIGNED}")
    picked = [c for c in crops[:: max(1, len(crops) // count)] if (RAW / c.relative_to(ALIGNED)).is_file()][:count]
    return {"aligned": [(c.name, c.read_bytes()) for c in picked],
            "raw": [(c.name, (RAW / c.relative_to(ALIGNED)).read_bytes()) for c in picked]}


# ------------------------------------------------------------------ the servers
class Server:
    """``python -m facelivt serve`` of this checkout as a subprocess on a free loopback port."""

    def __init__(self, name: str, folder: Path, args: argparse.Namespace, extra: list[str]):
        self.name, self.url, self.health = name, None, {}
        self.log = folder / "server.log"
        cmd = [sys.executable, "-m", "facelivt", "serve", "--host", "127.0.0.1", "--port", "0", "--json",
               "--model", args.model, "--weights", str(args.weights), "--gallery", str(folder / "galleries"),
               "--keys", str(folder / "keys.sqlite"), *extra]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.proc = subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=self.log.open("wb"),
                                     stdin=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Reads the start-up record (``{"url": ..., "pid": ...}``), then waits until /v1/health says ready."""
        deadline = time.monotonic() + timeout
        while self.url is None:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    self.fail(f"exited with {self.proc.returncode} before listening")
                if time.monotonic() > deadline:
                    self.fail(f"no start-up record within {timeout:.0f} s")
                continue
            if line.lstrip().startswith("{"):
                record = json.loads(line)
                self.url, self.pid = record["url"].rstrip("/"), int(record.get("pid") or self.proc.pid)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode}")
            r = httpx.get(f"{self.url}/v1/health", timeout=10)
            if r.status_code == 200 and r.json().get("ready"):
                self.health = r.json()
                return
            time.sleep(0.2)
        self.fail(f"not ready within {timeout:.0f} s")

    def fail(self, why: str) -> None:
        self.stop()
        tail = self.log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"serve_load.py: server {self.name!r} {why}; its log ends:\n{tail}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU seconds of the server process (Linux /proc), None elsewhere."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, AttributeError):
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> dict[str, float]:
        """Sums of the model metrics (counter totals, histogram sums and counts) now."""
        text = httpx.get(f"{self.url}/metrics", timeout=30).text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    def stop(self) -> None:
        """SIGTERM, then wait for it to drain and exit (SIGKILL after 30 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ------------------------------------------------------------------ the clients
def _problem(status: int, body: bytes, dim: int | None) -> str | None:
    """None when the answer is a complete embed answer for one image, else a short reason."""
    try:
        data = json.loads(body)
    except ValueError:
        return f"{status} not JSON"
    if status != 200:
        error = data.get("error") if isinstance(data, dict) else None
        return f"{status} {error.get('code', '?') if isinstance(error, dict) else '?'}"
    results = data.get("results", [])
    if len(results) != 1 or not results[0].get("faces"):
        return "200 without a face"
    if dim is not None and len(results[0]["faces"][0].get("embedding") or []) != dim:
        return "200 with a wrong embedding"
    return None


def _request(url: str, name: str, data: bytes, aligned: bool) -> bytes:
    """The whole HTTP/1.1 request of one embed call (multipart form encoded by httpx), built once so that
    the client's loop spends its CPU on sending, not on encoding the same form again."""
    form = {"aligned": "true" if aligned else "false", "face": "largest"}
    request = httpx.Request("POST", f"{url}/v1/embed", files=[("images", (name, data, "image/jpeg"))], data=form)
    body = request.read()
    head = (f"POST /v1/embed HTTP/1.1\r\nHost: {request.url.netloc.decode()}\r\n"
            f"Content-Type: {request.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


async def _exchange(conn: list, url: httpx.URL, request: bytes) -> tuple[int, bytes]:
    """One request on the client's keep-alive connection ``conn`` ([reader, writer], opened when empty):
    the status and the body (Content-Length framed, as uvicorn answers JSON)."""
    if not conn:
        conn.extend(await asyncio.open_connection(url.host, url.port))
    reader, writer = conn
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length, close = None, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        key, _, value = line.decode("latin-1").partition(":")
        key, value = key.strip().lower(), value.strip()
        length = int(value) if key == "content-length" else length
        close = close or (key == "connection" and value.lower() == "close")
    if length is None:
        raise ConnectionError("an answer without Content-Length")
    body = await reader.readexactly(length)
    if close:
        writer.close()
        conn.clear()
    return status, body


async def _load(url: str, pool: list[tuple[str, bytes]], aligned: bool, clients: int, requests: int,
                seconds: float, dim: int | None) -> tuple[list[float], dict[str, int], float]:
    """``clients`` keep-alive connections, one request in flight on each, until ``requests`` were sent or
    ``seconds`` passed: the latencies, the failures by reason and the wall seconds. A lean HTTP/1.1 client
    on asyncio streams (requests prepared beforehand, answers parsed as JSON and checked): client and
    server share the cores, so the client should take as little of them as it can."""
    counter, latencies, errors = itertools.count(), [], {}
    prepared = [_request(url, name, data, aligned) for name, data in pool]
    target = httpx.URL(url)
    start = time.perf_counter()
    deadline = start + seconds

    async def one_client() -> None:
        conn: list = []
        while time.perf_counter() < deadline and (i := next(counter)) < requests:
            t0 = time.perf_counter()
            try:
                why = _problem(*await _exchange(conn, target, prepared[i % len(prepared)]), dim)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                why = type(exc).__name__
                if conn:
                    conn[1].close()
                    conn.clear()
            latencies.append(time.perf_counter() - t0)
            if why:
                errors[why] = errors.get(why, 0) + 1
        if conn:
            conn[1].close()

    await asyncio.gather(*(one_client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - start


def model_totals(metrics: dict[str, float]) -> tuple[float, float, float]:
    """(model calls, images, model seconds) summed over the server's metric samples."""
    return (metrics.get(f"{BATCH_SIZE}_count", 0.0), metrics.get(f"{MODEL_IMAGES}_total", 0.0),
            metrics.get(f"{MODEL_SECONDS}_total", 0.0))


def measure(server: Server, kind: str, pool, clients: int, requests: int, seconds: float, dim: int | None) -> Row:
    """One segment of a row: the load, the server's model metrics and both sides' CPU over it."""
    before, cpu0, own0 = model_totals(server.metrics()), server.cpu_seconds(), time.process_time()
    latencies, errors, wall = asyncio.run(_load(server.url, pool, kind == "aligned", clients, requests, seconds, dim))
    own, cpu1 = time.process_time() - own0, server.cpu_seconds()
    time.sleep(0.05)  # the inference thread records a model call just after answering it
    after = model_totals(server.metrics())
    calls, images, model_s = (b - a for a, b in zip(before, after))
    return Row(server.name, kind, clients, len(latencies), sum(errors.values()), wall, calls, images, model_s,
               own, None if cpu0 is None or cpu1 is None else cpu1 - cpu0, errors, latencies)


def measure_rows(servers: list[Server], kind: str, pool, clients: int, args: argparse.Namespace,
                 dim: int | None) -> list[Row]:
    """The rows of every server at ``clients``, measured in ``--segments`` turns, the servers taking turns,
    so that a change in the machine's background load falls on all of them alike."""
    parts: dict[str, list[Row]] = {s.name: [] for s in servers}
    share = -(-args.requests // args.segments)
    for _ in range(args.segments):
        for server in servers:
            parts[server.name].append(measure(server, kind, pool, clients, share, args.seconds / args.segments, dim))
    return [sum(rows[1:], rows[0]) for rows in parts.values()]


def warm_up(servers: list[Server], kind: str, pool, clients: list[int], dim: int | None) -> None:
    """A few requests one at a time, then a burst at the most clients (batch shapes, first-call costs)."""
    for server in servers:
        asyncio.run(_load(server.url, pool, kind == "aligned", 1, 3, 60, dim))
        asyncio.run(_load(server.url, pool, kind == "aligned", max(clients), 2 * max(clients), 60, dim))


# ------------------------------------------------------------------ the model's own speed
def own_ms_per_image(rec: FaceRecognizer, crops: np.ndarray, rounds: int, size: int = 32) -> float:
    """Milliseconds per image of the server's model call (``embed_aligned``: the flip-sum, normalised) at
    batch ``size``, in this process (median of ``rounds`` calls, more for small batches)."""
    batch = np.resize(crops, (size, *crops.shape[1:]))
    for _ in range(2):
        rec.embed_aligned(batch)
    times = []
    for _ in range(max(rounds, rounds * 8 // size)):
        t0 = time.perf_counter()
        rec.embed_aligned(batch)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / size


# ------------------------------------------------------------------ tables
def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _find(rows: list[Row], server: str, kind: str, clients: int) -> Row | None:
    return next((r for r in rows if (r.server, r.kind, r.clients) == (server, kind, clients)), None)


def throughput_table(rows: list[Row], kind: str, clients: list[int]) -> list[str]:
    base = _find(rows, SINGLE, kind, 1) or _find(rows, SINGLE, kind, clients[0])
    out = ["| server | clients | requests | failed | requests/s | p50 ms | p99 ms | x one at a time | x --max-batch 1 |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for server in (SINGLE, BATCHED):
        for c in clients:
            r = _find(rows, server, kind, c)
            same = _find(rows, SINGLE, kind, c)
            p50, p99 = r.latency_ms(50), r.latency_ms(99)
            out.append(f"| {server} | {c} | {r.requests} | {r.failed} | {r.rps:.1f} | {p50:.1f} | {p99:.1f} | "
                       f"{_ratio(r.rps, base.rps)} | {_ratio(r.rps, same.rps)} |")
    return out


def model_table(rows: list[Row], kind: str, clients: list[int], own_ms: float, own_small: dict[int, float],
                backend: str) -> list[str]:
    out = ["| server | clients | model calls | mean batch | model ms/image | x model's own batch 32 | model busy "
           "| server cores | client cores |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size, ms in [*sorted(own_small.items()), (32, own_ms)]:
        out.append(f"| model's own, batch {size} ({backend}, this process) | - | - | {size} | {ms:.2f} | "
                   f"{_ratio(ms, own_ms)} | - | - | - |")
    for server in (SINGLE, BATCHED):
        for c in clients:
            r = _find(rows, server, kind, c)
            batch = "-" if r.mean_batch is None else f"{r.mean_batch:.1f}"
            model = "-" if r.model_ms is None else f"{r.model_ms:.2f}"
            cores = "-" if r.server_cores is None else f"{r.server_cores:.2f}"
            busy = r.model_seconds / r.seconds if r.seconds else 0.0
            out.append(f"| {server} | {c} | {r.model_calls:.0f} | {batch} | {model} | {_ratio(r.model_ms, own_ms)} | "
                       f"{busy:.0%} | {cores} | {r.client_cores:.2f} |")
    return out


def goals(rows: list[Row], kinds: list[str], most: int, own_ms: float) -> tuple[list[str], dict]:
    """The issue's two goals at the most clients, per kind of input: lines and their values."""
    lines, values = [], {}
    for kind in kinds:
        batched, single = _find(rows, BATCHED, kind, most), _find(rows, SINGLE, kind, most)
        speedup = batched.rps / single.rps if single.rps else 0.0
        model = batched.model_ms / own_ms if batched.model_ms else None
        values[kind] = {"speedup": speedup, "model_ratio": model}
        lines.append(f"goal, {KINDS[kind]}, {most} clients: requests/s >= 1.5x --max-batch 1: {speedup:.2f}x: "
                     f"{'met' if speedup >= 1.5 else 'not met'}")
        lines.append(f"goal, {KINDS[kind]}, {most} clients: model time per image in the server <= 1.25x its own at "
                     f"batch 32: " + ("no model metrics" if model is None else
                                      f"{model:.2f}x: {'met' if model <= 1.25 else 'not met'}"))
    return lines, values


# ------------------------------------------------------------------ the run
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, help="requests per row at most (default 800; --quick 6)")
    ap.add_argument("--seconds", type=float, help="seconds per row at most (default 24; --quick 30)")
    ap.add_argument("--clients", help="concurrent clients, comma-separated (default 1,8,32; --quick 1,4)")
    ap.add_argument("--photos", type=int, help="distinct photos sent, cycled (default 256; --quick 8)")
    ap.add_argument("--rounds", type=int,
                    help="timed batches of the model's own speed, before and after the load (default 20; --quick 2)")
    ap.add_argument("--segments", type=int, help="turns each row is measured in, the servers alternating "
                                                 "(default 4; --quick 1)")
    ap.add_argument("--kinds", default="aligned,raw", help="inputs: aligned, raw or both (default aligned,raw)")
    ap.add_argument("--model", default="facelivt_s", help="model name (default facelivt_s)")
    ap.add_argument("--weights", default=str(WEIGHTS), help="weights file (default the test weights trained on CelebA)")
    ap.add_argument("--backend", default="auto", help="the servers' --backend (default auto)")
    ap.add_argument("--threads", type=int, help="the servers' --threads, and this process's torch threads for the "
                                                "model's own speed (default: torch's choice in both)")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="one more option for both servers' command line, e.g. --serve-arg=--max-wait-ms=20 (repeatable)")
    ap.add_argument("--note", help="a line printed under the CPU, e.g. what else ran on the machine")
    ap.add_argument("--quick", action="store_true", help="a handful of requests per row (the test's mode)")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    args = ap.parse_args()
    quick = args.quick
    for name, full, tiny in (("requests", 800, 6), ("seconds", 24.0, 30.0), ("clients", "1,8,32", "1,4"),
                             ("photos", 256, 8), ("rounds", 20, 2), ("segments", 4, 1)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if quick else full)
    args.clients = sorted({int(c) for c in str(args.clients).split(",")})
    args.kinds = [k for k in args.kinds.split(",") if k]
    if not set(args.kinds) <= set(KINDS) or not args.kinds:
        ap.error(f"--kinds takes {', '.join(KINDS)}")
    if min(args.clients) < 1 or args.requests < 1 or args.seconds <= 0 or args.segments < 1 or (
            args.threads is not None and args.threads < 1):
        ap.error("--clients, --requests, --seconds, --segments and --threads must be positive")
    return args


def own_recognizer(args: argparse.Namespace, backend: str) -> FaceRecognizer:
    """The server's embedding call in this process: a recognizer of the same model and weights whose network
    is ``optimize_for_inference`` of it on ``backend`` (as facelivt/serve/engine.py builds it)."""
    rec = FaceRecognizer(args.model, args.weights, progress=False, workers=0, batch_size=64)
    optimized = optimize_for_inference(rec.model, backend)
    optimized.preprocess = rec.preprocess
    rec.model = optimized
    return rec


def run(args: argparse.Namespace, pool: dict, folder: Path) -> dict:
    """Starts the servers, measures the model's own speed and every row, stops the servers."""
    threads = ["--threads", str(args.threads)] if args.threads else []
    flags = ["--backend", args.backend, "--quiet", *threads, *args.serve_arg]
    if args.threads:
        torch.set_num_threads(args.threads)  # the ONNX Runtime session takes torch's thread count too
    servers = [Server(SINGLE, _mkdir(folder / "single"), args, ["--max-batch", "1", *flags]),
               Server(BATCHED, _mkdir(folder / "batched"), args, ["--max-batch", "32", *flags])]
    try:
        rec = own_recognizer(args, args.backend)  # while the servers load
        for server in servers:
            server.wait_ready()
        backends = {s.name: s.health.get("model", {}).get("backend") for s in servers}
        backend = backends[BATCHED]
        if backend != getattr(rec.model, "backend", None):
            rec = own_recognizer(args, backend)
        crops = np.stack([load_image(f) for f in sorted(ALIGNED.rglob("*.jpg"))[:32]])
        dim = rec.embedding_size
        own_before = own_ms_per_image(rec, crops, args.rounds)
        own_small = {size: own_ms_per_image(rec, crops, args.rounds, size) for size in SMALL_BATCHES}
        rows = []
        for kind in args.kinds:
            warm_up(servers, kind, pool[kind], args.clients, dim)
            for clients in args.clients:
                rows.extend(measure_rows(servers, kind, pool[kind], clients, args, dim))
        own_after = own_ms_per_image(rec, crops, args.rounds)
    finally:
        for server in servers:
            server.stop()
    return {"rows": rows, "backends": backends, "own_before": own_before, "own_after": own_after, "own_small": own_small,
            "dim": dim,
            "exit_codes": {s.name: s.proc.returncode for s in servers}}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def main() -> None:
    args = parse_args()
    logging.getLogger("facelivt").setLevel(logging.ERROR)  # not the test weights' card warning
    cap = cpu_capability()
    print(f"CPU capability: {cap.summary()}")
    print(f"client and server share this machine's {os.cpu_count()} cores: the client's asyncio loop takes "
          "CPU from the server (the cores columns say how much)")
    if args.note:
        print(f"note: {args.note}")
    load0 = os.getloadavg()
    pool = inputs(args.photos)
    with tempfile.TemporaryDirectory(prefix="serve_load_") as tmp:
        result = run(args, pool, Path(tmp))
    rows, own_ms = result["rows"], min(result["own_before"], result["own_after"])
    backend = result["backends"][BATCHED]
    threads = f"--threads {args.threads}" if args.threads else f"torch's default threads ({torch.get_num_threads()})"
    extra = f", server options {' '.join(args.serve_arg)}" if args.serve_arg else ""
    print(f"\n{args.model} ({Path(args.weights).name}), {threads}{extra}, backend {backend} in both servers "
          f"({', '.join(f'{k}: {v}' for k, v in result['backends'].items())}); POST /v1/embed, one image per request "
          f"(face=largest), {len(pool[args.kinds[0]])} distinct photos; at most {args.requests} requests or "
          f"{args.seconds:g} s per row; load average {load0[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"model's own time per image at batch 32: {result['own_before']:.2f} ms before the load, "
          f"{result['own_after']:.2f} ms after (the lower is the reference)")
    for kind in args.kinds:
        print(f"\n{KINDS[kind]}: throughput\n")
        print("\n".join(throughput_table(rows, kind, args.clients)))
        print(f"\n{KINDS[kind]}: the model inside the server (from /metrics)\n")
        print("\n".join(model_table(rows, kind, args.clients, own_ms, result["own_small"], backend)))
    lines, values = goals(rows, args.kinds, max(args.clients), own_ms)
    print("\n" + "\n".join(lines))
    failed = sum(r.failed for r in rows)
    print(f"\n{sum(r.requests for r in rows)} requests, {failed} failed; servers stopped by SIGTERM, exit codes "
          + ", ".join(f"{k}: {v}" for k, v in result["exit_codes"].items()))
    if args.json:
        write_json(args.json, {"cpu_capability": cap.to_dict(), "args": {k: v for k, v in vars(args).items()},
                               "backend": backend, "own_ms_per_image": own_ms, "own_before": result["own_before"],
                               "own_after": result["own_after"], "own_small_batches": result["own_small"],
                               "goals": values, "exit_codes": result["exit_codes"],
                               "rows": [r.to_dict() for r in rows]})
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
