"""The Hub look-alike of tests/hf_server.py, checked with the real huggingface_hub client (2.4.0).

Besides proving the helper, these tests pin down how huggingface_hub reacts to each fault, so that code built on
``hf_hub_download`` can be tested against known behaviour:

* corrupt body       -> no error: hf_hub_download checks only the size, the cache keeps a blob whose sha256 is
                        not its name.
* truncated body     -> ``httpx2.RemoteProtocolError`` after 1 + 5 GETs (1 s sleep between them); the partial
                        ``blobs/<etag>.<8 hex>.incomplete`` is deleted.
* 404 / 401 / 403    -> ``RemoteEntryNotFoundError`` / ``RepositoryNotFoundError`` / ``GatedRepoError`` at once.
* 500 / 503          -> ``LocalEntryNotFoundError`` (``__cause__`` the ``HfHubHTTPError``) after 7 HEADs and
                        1+2+4+8+8 = 23 s of backoff; ``get_hf_file_metadata`` alone raises ``HfHubHTTPError`` at once.
* stalled body       -> ``httpx2.ReadTimeout`` after 6 GETs: 6 x HF_HUB_DOWNLOAD_TIMEOUT + 5 x 1 s.
* slow HEAD          -> the first HEAD times out after ``etag_timeout`` (10 s), then a retry loop with a hard-coded
                        60 s timeout (``file_download._ETAG_RETRY_TIMEOUT``) waits it out.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx2
import pytest
import torch
from hf_server import HubServer, fast_hf_client, git_blob_sha1, hub_server, released_bytes  # noqa: F401
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "novendrastywn/FaceLiVT"
DATA = bytes(range(256)) * 1000  # 256 kB, LFS
CONFIG = b'{"variant": "facelivt_s"}\n'  # regular git file


@pytest.fixture
def hub(hub_server):  # noqa: F811
    hub_server.add_file(REPO, "facelivt_s.pth", DATA)
    hub_server.add_file(REPO, "config.json", CONFIG, lfs=False)
    return hub_server


def _download(hub, filename="facelivt_s.pth", cache=None, **kw):
    return hf_hub_download(REPO, filename, endpoint=hub.endpoint, cache_dir=cache, **kw)


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if not p.is_dir())


BLOB = "/blobs/"


# ---------------------------------------------------------------------------------------------- the happy path
def test_lfs_download_equals_bytes_one_head_one_blob_get(hub, tmp_path):
    path = Path(_download(hub, cache=tmp_path))
    assert path.read_bytes() == DATA
    commit = hub.commit(REPO)
    assert path == tmp_path / "models--novendrastywn--FaceLiVT" / "snapshots" / commit / "facelivt_s.pth"
    assert path.resolve().name == hashlib.sha256(DATA).hexdigest()  # blobs/<sha256>
    assert (tmp_path / "models--novendrastywn--FaceLiVT" / "refs" / "main").read_text() == commit
    # One HEAD of resolve (the 302 to another origin is not followed), then the blob GET: no GET of resolve.
    assert hub.requests == [
        ("HEAD", f"/{REPO}/resolve/main/facelivt_s.pth"),
        ("GET", f"{BLOB}{hub.sha256(REPO, 'facelivt_s.pth')}?repo_id=novendrastywn%2FFaceLiVT&filename=facelivt_s.pth"),
    ]


def test_metadata_lfs_and_regular(hub):
    meta = get_hf_file_metadata(hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint))
    assert meta.commit_hash == hub.commit(REPO)
    assert len(meta.commit_hash) == 40
    assert meta.etag == hashlib.sha256(DATA).hexdigest()
    assert meta.size == len(DATA)
    assert meta.location.startswith(hub.cdn_endpoint + BLOB) and hub.cdn_endpoint != hub.endpoint
    url = hf_hub_url(REPO, "facelivt_s.pth", revision=meta.commit_hash, endpoint=hub.endpoint)
    by_commit = get_hf_file_metadata(url)
    assert (by_commit.etag, by_commit.size) == (meta.etag, meta.size)

    meta = get_hf_file_metadata(hf_hub_url(REPO, "config.json", endpoint=hub.endpoint))
    assert meta.etag == git_blob_sha1(CONFIG) == hashlib.sha1(b"blob %d\0" % len(CONFIG) + CONFIG).hexdigest()
    assert (meta.size, meta.commit_hash) == (len(CONFIG), hub.commit(REPO))
    assert meta.location == hub.url(REPO, "config.json")  # 200, no redirect


def test_regular_file_download(hub, tmp_path):
    path = Path(_download(hub, "config.json", cache=tmp_path))
    assert path.read_bytes() == CONFIG
    assert path.resolve().name == git_blob_sha1(CONFIG)
    assert hub.requests == [("HEAD", f"/{REPO}/resolve/main/config.json"), ("GET", f"/{REPO}/resolve/main/config.json")]


def test_cached_file_by_commit_makes_no_request(hub, tmp_path):
    first = _download(hub, cache=tmp_path)
    hub.reset_log()
    assert _download(hub, cache=tmp_path, revision=hub.commit(REPO)) == first
    assert hub.requests == []  # a commit hash already in snapshots/ short-circuits the network entirely
    assert _download(hub, cache=tmp_path) == first  # by branch name: one HEAD to resolve "main", no GET
    assert hub.requests == [("HEAD", f"/{REPO}/resolve/main/facelivt_s.pth")]


def test_revision_names_and_pinned_commit(hub_server, tmp_path):  # noqa: F811
    pinned = "0123456789abcdef0123456789abcdef01234567"
    hub_server.add_file("o/r", "a.bin", b"abc", revision=pinned)
    hub_server.add_file("o/r", "a.bin", b"abc", revision="v1.0")
    assert hub_server.commit("o/r") == pinned
    for rev in ("main", "v1.0", pinned):
        meta = get_hf_file_metadata(hf_hub_url("o/r", "a.bin", revision=rev, endpoint=hub_server.endpoint))
        assert meta.commit_hash == pinned
    with pytest.raises(ValueError):
        hub_server.add_repo("o/r", commit="f" * 40)


def test_released_checkpoint(hub_server, tmp_path, shared_dir):  # noqa: F811
    ref_path = shared_dir / "reference" / "official_facelivt_s.pt"
    blob = released_bytes(ref_path)
    assert blob == released_bytes(ref_path)  # deterministic
    hub_server.add_file(REPO, "facelivt_s.pth", blob)
    path = hf_hub_download(REPO, "facelivt_s.pth", endpoint=hub_server.endpoint, cache_dir=tmp_path)
    assert _sha256(path) == hashlib.sha256(blob).hexdigest()
    state = torch.load(path, weights_only=True)
    ref = torch.load(ref_path, weights_only=True)
    assert list(state) == list(ref["state_dict"])
    assert all(torch.equal(state[k], v) for k, v in ref["state_dict"].items())


# ---------------------------------------------------------------------------------------------- Range
def test_range_requests(hub):
    blob_url = get_hf_file_metadata(hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint)).location
    n = len(DATA)
    cases = {"bytes=100-199": (100, 200), "bytes=250000-": (250000, n), "bytes=-10": (n - 10, n), "bytes=0-": (0, n)}
    for header, (start, end) in cases.items():
        r = httpx2.get(blob_url, headers={"Range": header})
        assert r.status_code == 206
        assert r.content == DATA[start:end]
        assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
        assert int(r.headers["Content-Length"]) == end - start
    r = httpx2.get(blob_url, headers={"Range": f"bytes={len(DATA)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(DATA)}"
    r = httpx2.get(hub.url(REPO, "config.json"), headers={"Range": "bytes=2-9"})  # regular file, on resolve
    assert (r.status_code, r.content) == (206, CONFIG[2:10])
    r = httpx2.get(hub.url(REPO, "facelivt_s.pth"), follow_redirects=True)  # resolve GET follows the 302
    assert r.content == DATA and len(r.history) == 1 and r.history[0].status_code == 302


def test_dropped_connection_resumes_with_range(hub_server, tmp_path, monkeypatch):  # noqa: F811
    """A one-off drop is recovered by http_get's resume, with a Range request only past its 10 MiB read chunks."""
    sleeps = fast_hf_client(monkeypatch, timeout=5)
    big = bytes(range(256)) * (21 * 4096)  # 21 MiB: the drop at half (10.5 MiB) comes after one full chunk
    hub_server.add_file(REPO, "big.bin", big)
    hub_server.set_fault(REPO, "big.bin", "truncate", times=1)
    path = hf_hub_download(REPO, "big.bin", endpoint=hub_server.endpoint, cache_dir=tmp_path)
    assert Path(path).read_bytes() == big
    gets = [h.get("range") for (m, p), h in zip(hub_server.requests, hub_server.request_headers) if m == "GET"]
    assert gets == [None, f"bytes={10 * 1024 * 1024}-"]
    assert sleeps == [1]


# ---------------------------------------------------------------------------------------------- faults
def test_corrupt_passes_the_size_check(hub, tmp_path):
    hub.set_fault(REPO, "facelivt_s.pth", "corrupt")
    meta = get_hf_file_metadata(hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint))
    assert (meta.etag, meta.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))  # headers tell the truth
    path = _download(hub, cache=tmp_path)  # no error: only the size is checked
    assert os.path.getsize(path) == len(DATA)
    assert _sha256(path) != meta.etag
    assert Path(path).resolve().name == meta.etag  # ... but the bad bytes are cached under the good name
    hub.set_fault(REPO, "facelivt_s.pth", None)
    hub.reset_log()
    assert _sha256(_download(hub, cache=tmp_path)) != meta.etag  # and served again: the blob is never re-checked
    assert hub.count("GET") == 0


def test_truncate_raises_remote_protocol_error(hub, tmp_path, monkeypatch):
    sleeps = fast_hf_client(monkeypatch)
    hub.set_fault(REPO, "facelivt_s.pth", "truncate")
    with pytest.raises(httpx2.RemoteProtocolError, match="peer closed connection without sending complete"):
        _download(hub, cache=tmp_path)
    # 1 GET + 5 retries; the half received each time sits in httpx2's 10 MiB read buffer, never reaches the file,
    # so every retry starts again from byte 0 (no Range header).
    assert hub.count("GET", BLOB) == 6
    assert all("range" not in h for h in hub.request_headers)
    assert sleeps == [1, 1, 1, 1, 1]
    commit = hub.commit(REPO)
    lock = f".locks/models--novendrastywn--FaceLiVT/{hashlib.sha256(DATA).hexdigest()}.lock"
    assert _cache_files(tmp_path) == sorted([lock, "CACHEDIR.TAG", "models--novendrastywn--FaceLiVT/refs/main"])
    assert (tmp_path / "models--novendrastywn--FaceLiVT" / "snapshots" / commit).is_dir()  # left empty
    assert not list(tmp_path.rglob("*.incomplete"))


def test_truncate_small_file_once_is_retried_from_scratch(hub, tmp_path, monkeypatch):
    fast_hf_client(monkeypatch)
    hub.set_fault(REPO, "facelivt_s.pth", "truncate", times=1)
    assert Path(_download(hub, cache=tmp_path)).read_bytes() == DATA
    assert hub.count("GET", BLOB) == 2


@pytest.mark.parametrize(
    "status, error_code, download_error, metadata_error",
    [
        (404, ..., RemoteEntryNotFoundError, RemoteEntryNotFoundError),
        (401, ..., RepositoryNotFoundError, RepositoryNotFoundError),
        (401, None, HfHubHTTPError, HfHubHTTPError),  # no X-Error-Code on an http:// endpoint: the generic class
        (403, ..., GatedRepoError, GatedRepoError),
        (500, ..., LocalEntryNotFoundError, HfHubHTTPError),
        (503, ..., LocalEntryNotFoundError, HfHubHTTPError),
    ],
)
def test_status_faults(hub, tmp_path, monkeypatch, status, error_code, download_error, metadata_error):
    sleeps = fast_hf_client(monkeypatch)
    kw = {} if error_code is ... else {"error_code": error_code}
    hub.set_fault(REPO, "facelivt_s.pth", status, **kw)
    with pytest.raises(metadata_error) as info:
        get_hf_file_metadata(hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint), timeout=1)
    assert info.value.response.status_code == status
    assert hub.count("HEAD") == 1  # get_hf_file_metadata alone never retries (retry_on_errors=False)
    hub.reset_log()
    with pytest.raises(download_error) as info:
        _download(hub, cache=tmp_path)
    if status >= 500:
        # 5xx: the HEAD is retried with backoff (max_retries=5), then wrapped as "cannot find it in the cache".
        assert type(info.value) is LocalEntryNotFoundError
        assert isinstance(info.value.__cause__, HfHubHTTPError)
        assert info.value.__cause__.response.status_code == status
        assert hub.count("HEAD") == 7 and sleeps == [1, 2, 4, 8, 8]  # 23 s unpatched (measured 23.06 s)
    else:
        assert type(info.value) is download_error
        assert hub.count("HEAD") == 1 and sleeps == []
    assert hub.count("GET") == 0
    no_exist = tmp_path / "models--novendrastywn--FaceLiVT" / ".no_exist" / hub.commit(REPO) / "facelivt_s.pth"
    assert no_exist.exists() == (status == 404)  # EntryNotFound with X-Repo-Commit is cached as a marker


def test_transient_503_recovers(hub, tmp_path, monkeypatch):
    sleeps = fast_hf_client(monkeypatch)
    hub.set_fault(REPO, "facelivt_s.pth", 503, times=2)
    assert Path(_download(hub, cache=tmp_path)).read_bytes() == DATA
    assert hub.count("HEAD") == 3 and sleeps == [1]


def test_unknown_repo_revision_file(hub, tmp_path):
    with pytest.raises(RepositoryNotFoundError) as info:
        hf_hub_download("nobody/nothing", "x.bin", endpoint=hub.endpoint, cache_dir=tmp_path)
    assert info.value.response.headers["X-Error-Code"] == "RepoNotFound"
    with pytest.raises(RevisionNotFoundError):
        _download(hub, cache=tmp_path, revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        _download(hub, "missing.bin", cache=tmp_path)
    assert (tmp_path / "models--novendrastywn--FaceLiVT" / ".no_exist" / hub.commit(REPO) / "missing.bin").exists()
    assert httpx2.get(hub.endpoint + "/nowhere").status_code == 404


def test_stall_times_out_quickly(hub, tmp_path, monkeypatch):
    sleeps = fast_hf_client(monkeypatch, timeout=0.1, etag_timeout=5)
    hub.set_fault(REPO, "facelivt_s.pth", "stall")
    meta = get_hf_file_metadata(hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint), timeout=1)
    assert meta.size == len(DATA)  # HEAD is unaffected
    start = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        _download(hub, cache=tmp_path)
    assert time.monotonic() - start < 3  # 6 reads x 0.1 s; unpatched: 6 x 10 s + 5 x 1 s (measured 11.1 s at 1 s)
    assert hub.count("GET", BLOB) == 6 and sleeps == [1] * 5
    assert not list(tmp_path.rglob("*.incomplete"))


def test_short_stall_only_slows_down(hub, tmp_path, monkeypatch):
    fast_hf_client(monkeypatch, timeout=2)
    hub.stall_seconds = 0.2
    hub.set_fault(REPO, "facelivt_s.pth", "stall")
    assert Path(_download(hub, cache=tmp_path)).read_bytes() == DATA
    assert hub.count("GET", BLOB) == 1


def test_slow_head(hub, tmp_path, monkeypatch):
    hub.stall_seconds = 0.5
    hub.set_fault(REPO, "facelivt_s.pth", "slow_head")
    url = hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint)
    start = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        get_hf_file_metadata(url, timeout=0.1)
    assert time.monotonic() - start < 0.45
    # hf_hub_download: etag_timeout only bounds the first HEAD; its retry uses a hard-coded 60 s, so a HEAD slower
    # than etag_timeout but under 60 s still succeeds (here after 0.1 s + 0.5 s).
    hub.reset_log()
    start = time.monotonic()
    assert Path(_download(hub, cache=tmp_path, etag_timeout=0.1)).read_bytes() == DATA
    assert 0.5 <= time.monotonic() - start < 3
    assert hub.count("HEAD") == 2
    # With the retry timeout made short too, it gives up: 1 + 6 HEADs, LocalEntryNotFoundError from the timeout.
    sleeps = fast_hf_client(monkeypatch, timeout=0.1)
    hub.reset_log()
    with pytest.raises(LocalEntryNotFoundError) as info:
        _download(hub, cache=tmp_path / "other")
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)
    assert hub.count("HEAD") == 7 and sleeps == [1, 2, 4, 8, 8]


def _run_client(code: str, env: dict[str, str], **kw) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    full_env.update(env)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_timeouts_from_environment(hub):
    """The env variables are read once, at import: integer seconds only ("0" means the default 10)."""
    hub.stall_seconds = 5
    hub.set_fault(REPO, "facelivt_s.pth", "slow_head")
    code = f"""
        import time, httpx2
        from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
        print(constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
        start = time.monotonic()
        try:
            get_hf_file_metadata(hf_hub_url({REPO!r}, "facelivt_s.pth", endpoint={hub.endpoint!r}))
        except httpx2.ReadTimeout:
            print("timeout", time.monotonic() - start)
    """
    proc = _run_client(code, {"HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "0"})
    out, err = proc.communicate(timeout=30)
    etag_timeout, download_timeout, outcome, elapsed = out.split()
    assert (etag_timeout, download_timeout, outcome) == ("1", "10", "timeout"), err
    assert 0.9 <= float(elapsed) < 4
    proc = _run_client("import huggingface_hub.constants", {"HF_HUB_DOWNLOAD_TIMEOUT": "0.5"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "ValueError" in err


def test_killed_download_leaves_incomplete_file(hub, tmp_path):
    """A process killed mid-download leaves blobs/<etag>.<8 hex>.incomplete (cleanup runs only on exceptions)."""
    hub.set_fault(REPO, "facelivt_s.pth", "stall")
    code = f"""
        from huggingface_hub import hf_hub_download
        hf_hub_download({REPO!r}, "facelivt_s.pth", endpoint={hub.endpoint!r}, cache_dir={str(tmp_path)!r})
    """
    proc = _run_client(code, {})
    blobs = tmp_path / "models--novendrastywn--FaceLiVT" / "blobs"
    deadline = time.monotonic() + 20
    while not (hub.count("GET", BLOB) and list(blobs.glob("*.incomplete"))) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.communicate()
    etag = hashlib.sha256(DATA).hexdigest()
    (left,) = [p.name for p in blobs.iterdir()]
    assert left.startswith(etag + ".") and left.endswith(".incomplete") and len(left) == len(etag) + 1 + 8 + 11


# ---------------------------------------------------------------------------------------------- plain files, auth
def test_plain_files(hub_server):  # noqa: F811
    url = hub_server.add_plain("releases/v1/facelivt_s.pth", DATA)
    assert url == hub_server.endpoint + "/releases/v1/facelivt_s.pth"
    r = httpx2.head(url)
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(DATA) and "ETag" not in r.headers
    assert httpx2.get(url).content == DATA
    r = httpx2.get(url, headers={"Range": "bytes=10-"})
    assert (r.status_code, r.content) == (206, DATA[10:])

    url2 = hub_server.add_plain("/other/w.bin", DATA, declare_sha256=True)
    r = httpx2.head(url2)
    assert r.headers["ETag"] == r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'

    hub_server.set_plain_fault("other/w.bin", "corrupt")
    body = httpx2.get(url2).content
    assert len(body) == len(DATA) and body != DATA
    hub_server.set_plain_fault("other/w.bin", "truncate")
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.get(url2)
    hub_server.set_plain_fault("other/w.bin", 503, times=1)
    assert [httpx2.get(url2).status_code, httpx2.get(url2).status_code] == [503, 200]
    with pytest.raises(ValueError):
        hub_server.set_plain_fault("other/w.bin", "explode")


def test_authorization_not_sent_to_the_blob_origin(hub, tmp_path):
    _download(hub, cache=tmp_path, token="hf_test_token")
    heads, gets = ([h for (m, _), h in zip(hub.requests, hub.request_headers) if m == k] for k in ("HEAD", "GET"))
    assert heads[0]["authorization"] == "Bearer hf_test_token"
    assert "authorization" not in gets[0]


def test_same_origin_blobs(tmp_path):
    with HubServer(cdn=False) as hub:
        hub.add_file(REPO, "facelivt_s.pth", DATA)
        assert hub.cdn_endpoint == hub.endpoint
        meta = get_hf_file_metadata(hf_hub_url(REPO, "facelivt_s.pth", endpoint=hub.endpoint))
        assert (meta.commit_hash, meta.size) == (hub.commit(REPO), len(DATA))
        assert meta.etag == hashlib.sha256(DATA).hexdigest()
        assert meta.location.startswith(hub.endpoint + BLOB)
        assert [m for m, _ in hub.requests] == ["HEAD", "HEAD"]  # the HEAD follows a same-origin redirect
        hub.reset_log()
        assert Path(_download(hub, cache=tmp_path, token="hf_test_token")).read_bytes() == DATA
        assert hub.request_headers[-1]["authorization"] == "Bearer hf_test_token"  # same origin keeps the token


# ---------------------------------------------------------------------------------------------- log, shutdown
def test_log_and_clean_shutdown(tmp_path):
    hub = HubServer(stall_seconds=30)
    with hub:
        hub.add_file(REPO, "f.bin", DATA)
        hub.add_file(REPO, "g.bin", DATA)
        hub.set_fault(REPO, "f.bin", "stall")
        blob = get_hf_file_metadata(hf_hub_url(REPO, "f.bin", endpoint=hub.endpoint)).location
        with httpx2.stream("GET", blob, timeout=5) as stalled:  # a handler is now stuck in its 30 s stall
            assert stalled.status_code == 200
            assert httpx2.get(hub.url(REPO, "g.bin"), follow_redirects=True).content == DATA  # others are served
            assert hub.count() == 4
            assert hub.count("get") == 3 and hub.count(path_contains="g.bin") == 2
            assert hub.count("HEAD", "f.bin") == 1
            hub.reset_log()
            assert hub.requests == [] and hub.count() == 0
            start = time.monotonic()
            hub.close()
            assert time.monotonic() - start < 2  # the stalled handler does not hold up the shutdown
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(hub.endpoint + "/", timeout=2)
