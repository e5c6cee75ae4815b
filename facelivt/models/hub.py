"""Remote and pretrained weights: a reference is resolved, downloaded, checked, converted once to
safetensors and kept in the facelivt cache; later loads read that file and make no network request.

A reference is one of:

- a pretrained name from :data:`facelivt.models.pretrained.PRETRAINED` (``facelivtv2_s``);
- ``hf://owner/repo[@revision]/path/file`` (a Hugging Face repository; also the
  ``https://HOST/owner/repo/resolve/REVISION/path/file`` form of its URLs);
- ``https://...`` (any server; ``#sha256=HEX`` at the end pins the file's sha256);
- a local file (used as it is, never copied).

Hugging Face files are downloaded with ``huggingface_hub`` into its own cache, so the ecosystem's
settings hold: ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE=1``,
``HF_TOKEN``, ``HF_HUB_DOWNLOAD_TIMEOUT``. A download is accepted only when

1. its size and sha256 match what the server declared (Git LFS files: the ETag is the sha256; small
   files: the ETag is the git blob sha1, checked as such) and a sha256 pinned in the table, if any;
2. it loads with ``torch.load(weights_only=True)`` (a pickle that asks to run code is refused; nothing runs);
3. it converts with a strict key and shape match to the variant it claims;
4. every tensor is finite.

A file that fails is deleted from the Hugging Face cache and :class:`IntegrityError` says which check
failed. What was accepted is written to ``$FACELIVT_HOME/weights/KEY.safetensors`` (train form) with a
record ``KEY.json`` (reference, revision, sha256 of the download and of the safetensors file), both
atomically and together; ``FACELIVT_HOME`` defaults to ``~/.cache/facelivt``. A cross-process lock per
reference makes two processes asking for the same weights download them once.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import huggingface_hub
from filelock import FileLock
from huggingface_hub import errors as hf_errors
from tqdm import tqdm

from facelivt.errors import FaceLiVTError, InvalidInputError, OutputWriteError, check_input_file
from facelivt.files import atomic_paths, file_sha256, write_json
from facelivt.models.card import CARD_KEY, HeldOutResult, ModelCard, TrainingData, card_metadata, read_card
from facelivt.models.checkpoint_io import SAFETENSORS, CheckpointReadError, UnsafeCheckpointError, safe_torch_load, sniff_format
from facelivt.models.config import V2_VARIANTS, VARIANTS
from facelivt.models.pretrained import BENCHMARK_TITLES, PRETRAINED, PretrainedWeights, list_pretrained
from facelivt.models.registry import check_model_name
from facelivt.models.released import CheckpointMismatchError, convert_released_state_dict, is_released_layout, unwrap_checkpoint
from facelivt.models.weights import fit_state_dict, read_safetensors, serialise_safetensors

log = logging.getLogger(__name__)

ENV_HOME = "FACELIVT_HOME"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_HF_URL = re.compile(r"^https?://[^/]+/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class DownloadError(FaceLiVTError, RuntimeError):
    """Weights could not be fetched: offline with nothing cached, an HTTP error, no connection, a
    stalled server or a truncated transfer. The message says what to do."""


class IntegrityError(FaceLiVTError, ValueError):
    """A downloaded file failed a check (``check``: ``size``, ``sha256``, ``weights_only``, ``variant``,
    ``finite``); it was deleted from the cache."""

    def __init__(self, check: str, message: str):
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class WeightsRef:
    """A parsed reference (see the module docstring). ``kind``: ``pretrained``, ``hf``, ``url`` or ``file``."""

    kind: str
    text: str
    repo_id: str | None = None
    filename: str | None = None
    revision: str = "main"
    url: str | None = None
    path: Path | None = None
    entry: PretrainedWeights | None = None
    sha256: str | None = None  # pinned: the table's, or a URL's #sha256=

    @property
    def key(self) -> str:
        """The file name (without suffix) of this reference in the facelivt cache."""
        if self.kind == "pretrained":
            return self.entry.name
        if self.kind == "hf":
            raw = f"hf--{self.repo_id}--{self.revision}--{self.filename}"
        else:
            raw = f"url--{hashlib.sha256(self.url.encode()).hexdigest()[:16]}--{Path(urllib.parse.urlsplit(self.url).path).name}"
        return re.sub(r"[^A-Za-z0-9._-]+", "--", raw)

    @property
    def variant(self) -> str | None:
        return self.entry.variant if self.entry is not None else None


@dataclass(frozen=True)
class CachedWeights:
    """Weights in the facelivt cache: ``path`` (safetensors, train form unless the source was a deploy
    form) and its ``record`` (reference, variant, source, revision, sha256, licence, when)."""

    path: Path
    record: dict

    @property
    def variant(self) -> str:
        return self.record["variant"]

    def describe(self) -> str:
        """One line for people: what these weights are and where they came from."""
        r = self.record
        name = f"pretrained {r['pretrained']}" if r.get("pretrained") else r["reference"]
        rev = f"@{r['revision'][:12]}" if r.get("revision") else ""
        trained = f", trained on {r['trained_on']}" if r.get("trained_on") else ""
        licence = f", licence {r['licence']}" if r.get("licence") else ""
        return f"{name} ({r['variant']}{trained}{licence}; {r['source']}{rev})"


# ---------------------------------------------------------------------------------------------- places
def facelivt_home() -> Path:
    """``$FACELIVT_HOME``, else ``$XDG_CACHE_HOME/facelivt``, else ``~/.cache/facelivt``."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "facelivt"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time as ``huggingface_hub`` does."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "on", "yes", "true"}


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _timeout() -> float:
    try:
        return float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT") or 10)
    except ValueError:
        raise InvalidInputError(f"HF_HUB_DOWNLOAD_TIMEOUT must be a number of seconds, got {os.environ['HF_HUB_DOWNLOAD_TIMEOUT']!r}") from None


# ---------------------------------------------------------------------------------------------- references
def is_reference(text: str | os.PathLike) -> bool:
    """Whether ``text`` names remote or pretrained weights (and not a local file)."""
    if isinstance(text, os.PathLike) or Path(str(text)).exists():
        return False
    s = str(text)
    return s.startswith(("hf://", "http://", "https://")) or s in PRETRAINED


def parse_weights_ref(ref: str | os.PathLike) -> WeightsRef:
    """Parse a reference; a string that is neither an existing file nor a valid reference raises
    :class:`InputNotFoundError` (for what looks like a path) or :class:`InvalidInputError`."""
    if isinstance(ref, os.PathLike) or Path(str(ref)).is_file():
        return WeightsRef("file", str(ref), path=Path(ref))
    text = str(ref)
    if text in PRETRAINED:
        entry = PRETRAINED[text]
        return WeightsRef("pretrained", text, entry.repo_id, entry.filename, entry.revision, entry=entry, sha256=entry.sha256)
    if text.startswith("hf://"):
        return _parse_hf(text)
    if text.startswith(("http://", "https://")):
        return _parse_url(text)
    if os.sep in text or "." in Path(text).name or Path(text).exists():
        check_input_file(text, "weights file")  # raises: nothing there, or a folder
    raise InvalidInputError(
        f"{text!r} is neither a weights file nor a pretrained name ({', '.join(list_pretrained())}) nor a "
        "remote reference (hf://owner/repo/file, https://...)"
    )


def _parse_hf(text: str) -> WeightsRef:
    m = re.match(r"^hf://(?P<owner>[^/@]+)/(?P<repo>[^/@]+)(?:@(?P<rev>[^/]+))?/(?P<file>[^#]+)$", text)
    if not m:
        raise InvalidInputError(f"bad Hugging Face reference {text!r}: expected hf://owner/repo[@revision]/path/to/file")
    return WeightsRef("hf", text, f"{m['owner']}/{m['repo']}", m["file"], m["rev"] or "main")


def _parse_url(text: str) -> WeightsRef:
    url, _, fragment = text.partition("#")
    sha = None
    if fragment:
        if not fragment.startswith("sha256=") or not _SHA256.match(fragment[7:].lower()):
            raise InvalidInputError(f"bad URL fragment in {text!r}: only #sha256=<64 hex digits> is understood")
        sha = fragment[7:].lower()
    m = _HF_URL.match(url)
    if m and url.startswith(_endpoint() + "/") or (m and "huggingface.co" in urllib.parse.urlsplit(url).netloc):
        return WeightsRef("hf", text, m["repo"], urllib.parse.unquote(m["file"]), urllib.parse.unquote(m["rev"]), sha256=sha)
    return WeightsRef("url", text, url=url, sha256=sha)


# ---------------------------------------------------------------------------------------------- the cache
def _cache_paths(home: Path, ref: WeightsRef) -> tuple[Path, Path]:
    folder = home / "weights"
    return folder / f"{ref.key}.safetensors", folder / f"{ref.key}.json"


def cached_weights(ref: str | os.PathLike | WeightsRef, home: str | os.PathLike | None = None) -> CachedWeights | None:
    """The cached weights of ``ref``, checked against their record's sha256; None when not cached (a
    damaged entry is removed and reported in the log). Makes no network request."""
    ref = ref if isinstance(ref, WeightsRef) else parse_weights_ref(ref)
    weights, record_path = _cache_paths(Path(home) if home else facelivt_home(), ref)
    if not (weights.is_file() and record_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
        ok = record.get("safetensors_sha256") == file_sha256(weights)
    except (OSError, ValueError):
        ok = False
    if not ok:
        log.warning("cached weights %s do not match their record (damaged or edited): fetching them again", weights)
        for p in (weights, record_path):
            p.unlink(missing_ok=True)
        return None
    return CachedWeights(weights, record)


# ---------------------------------------------------------------------------------------------- fetching
def fetch_weights(
    ref: str | os.PathLike | WeightsRef,
    variant: str | None = None,
    *,
    progress: bool = True,
    home: str | os.PathLike | None = None,
) -> CachedWeights:
    """The cached, checked safetensors of a pretrained name or remote reference, fetching it first
    when needed (see the module docstring). ``variant`` is the model the weights must fit (taken from
    the table, the file's metadata or its shapes when not given). ``home``: the facelivt cache
    (default :func:`facelivt_home`)."""
    ref = ref if isinstance(ref, WeightsRef) else parse_weights_ref(ref)
    if ref.kind == "file":
        raise InvalidInputError(f"{ref.text} is a local file: load it directly, it needs no fetching")
    if variant is not None:
        check_model_name(variant)  # before the table, the cache or the network is asked
    if ref.entry is not None and variant is not None and variant != ref.entry.variant:
        raise CheckpointMismatchError(f"pretrained weights {ref.text!r} are for {ref.entry.variant!r}, not {variant!r}")
    home = Path(home) if home else facelivt_home()
    hit = cached_weights(ref, home)
    if hit is not None:
        return hit
    weights, record_path = _cache_paths(home, ref)
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
        (home / "locks").mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(home / "locks" / f"{ref.key}.lock"))
        lock.acquire()
    except OSError as exc:
        raise OutputWriteError(home / "locks", exc) from exc
    try:
        hit = cached_weights(ref, home)  # another process may have fetched it while we waited
        if hit is not None:
            return hit
        return _fetch_and_convert(ref, variant, home, progress)
    finally:
        lock.release()


def _fetch_and_convert(ref: WeightsRef, variant: str | None, home: Path, progress: bool) -> CachedWeights:
    t0 = time.monotonic()
    raw, source = _download(ref, home, progress)
    try:
        tensors, meta, variant = _convert(raw, ref, variant or ref.variant, source)
    except IntegrityError:
        source.discard()
        raise
    weights, record_path = _cache_paths(home, ref)
    record = _record(ref, source, variant, meta)
    meta = {**meta, **{k: str(v) for k, v in record.items() if k in _META_KEYS and v}}
    card = reference_card(ref, variant) if ref.entry is not None or CARD_KEY not in meta else None
    data = serialise_safetensors(tensors, {**meta, **card_metadata(card)})
    record["safetensors_sha256"] = hashlib.sha256(data).hexdigest()
    with atomic_paths(weights, record_path) as (tmp_weights, tmp_record):
        tmp_weights.write_bytes(data)
        write_json(tmp_record, record)
    if ref.kind == "url":
        source.discard()  # our own download: the safetensors is what we keep
    log.info("fetched %s into %s in %.1f s", ref.text, weights, time.monotonic() - t0)
    return CachedWeights(weights, record)


def pretrained_card(entry: PretrainedWeights) -> ModelCard:
    """The model card of published weights, from the pretrained table: real faces (what the authors
    trained on), their best-known published figure, no calibrated threshold (the authors give none)."""
    figures = entry.accuracy.figures()
    key = "ijbc" if "ijbc" in figures else next(iter(figures), None)
    heldout = None
    if key is not None:
        metric = "TAR % at FAR=1e-4" if key in ("ijbb", "ijbc") else "verification accuracy %"
        heldout = HeldOutResult(set=BENCHMARK_TITLES[key], metric=f"{metric} ({entry.accuracy.source})", value=figures[key])
    return ModelCard(
        model=entry.variant,
        training=TrainingData(dataset=entry.trained_on, faces="real"),
        heldout=heldout,
        provenance=f"converted from the authors' release {entry.reference} (trained on {entry.trained_on} per the "
                   f"pretrained table; licence {entry.licence})",
    )


def reference_card(ref: WeightsRef, variant: str) -> ModelCard:
    """The card of fetched weights: a pretrained entry's (:func:`pretrained_card`); for other remote
    files only where they came from (what they were trained on is not known)."""
    if ref.entry is not None:
        return pretrained_card(ref.entry)
    return ModelCard(model=variant, provenance=f"fetched from {ref.text}; what it was trained on is not recorded")


def weights_card(path: str | os.PathLike, cached: CachedWeights | None = None) -> ModelCard | None:
    """The model card of loaded weights (:func:`facelivt.models.card.read_card`); a pretrained cache
    entry written before cards existed gets the card of its table entry."""
    card = read_card(path)
    if card is None and cached is not None and cached.record.get("pretrained") in PRETRAINED:
        card = pretrained_card(PRETRAINED[cached.record["pretrained"]])
    return card


_META_KEYS = ("pretrained", "reference", "source", "revision", "sha256", "licence", "trained_on")


def _record(ref: WeightsRef, source: "_Source", variant: str, meta: dict) -> dict:
    entry = ref.entry
    return {
        "reference": ref.text,
        "pretrained": entry.name if entry else None,
        "variant": variant,
        "form": meta.get("form", "train"),
        "source": source.url,
        "revision": source.commit,
        "sha256": source.sha256,
        "size": source.size,
        "checks": source.checks + ["weights_only", "strict keys and shapes", "finite"],
        "licence": entry.licence if entry else None,
        "trained_on": entry.trained_on if entry else None,
        "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


@dataclass
class _Source:
    """A downloaded file and what was checked of it; ``discard`` deletes it from its cache."""

    path: Path
    url: str
    sha256: str
    size: int
    commit: str | None
    checks: list
    remove: tuple = ()

    def discard(self) -> None:
        for p in self.remove:
            with contextlib.suppress(OSError):
                Path(p).unlink(missing_ok=True)


def _download(ref: WeightsRef, home: Path, progress: bool) -> tuple[Path, _Source]:
    if ref.kind in ("pretrained", "hf"):
        return _download_hf(ref, progress)
    return _download_url(ref, home, progress)


def offline_message(ref: WeightsRef) -> str:
    """What to do when ``ref`` is needed on a machine that cannot download it."""
    weights, _ = _cache_paths(facelivt_home(), ref)
    return (
        f"{ref.text} is not in the facelivt cache ({weights}). On a machine with internet run "
        f"`facelivt download {ref.text} --out DIR`, copy DIR here and set {ENV_HOME}=DIR "
        f"(or pass --weights DIR/weights/{ref.key}.safetensors)"
    )


# Hugging Face ------------------------------------------------------------------------------------------
def _download_hf(ref: WeightsRef, progress: bool) -> tuple[Path, _Source]:
    endpoint, cache = _endpoint(), hf_cache_dir()
    url = huggingface_hub.hf_hub_url(ref.repo_id, ref.filename, revision=ref.revision, endpoint=endpoint)
    where = f"{ref.repo_id}/{ref.filename}@{ref.revision} from {endpoint}"
    tqdm_class = None if progress else _SilentTqdm
    try:
        if hf_offline():
            path = huggingface_hub.hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision, cache_dir=cache,
                                                   endpoint=endpoint, local_files_only=True)
            return Path(path), _offline_source(ref, Path(path), url)
        meta = huggingface_hub.get_hf_file_metadata(url, timeout=_timeout(), endpoint=endpoint)
        _check_room(cache, meta.size, where)
        with warnings.catch_warnings():  # its own free-space warning: _check_room said it in one line
            warnings.filterwarnings("ignore", message="Not enough free disk space")
            path = huggingface_hub.hf_hub_download(ref.repo_id, ref.filename, revision=meta.commit_hash or ref.revision,
                                                   cache_dir=cache, endpoint=endpoint, etag_timeout=_timeout(),
                                                   tqdm_class=tqdm_class)
    except hf_errors.LocalEntryNotFoundError as exc:
        if hf_offline():
            raise DownloadError(f"HF_HUB_OFFLINE is set and {offline_message(ref)}") from None
        raise DownloadError(f"cannot reach {endpoint} to download {where}: {_cause(exc)}. {offline_message(ref)}") from None
    except (hf_errors.HfHubHTTPError, hf_errors.FileMetadataError) as exc:
        raise DownloadError(_http_message(exc, where)) from None
    except OSError as exc:
        _drop_incomplete(cache, ref)
        raise _os_error(exc, where, cache) from None
    except Exception as exc:  # the HTTP client's connection, timeout and protocol errors
        if type(exc).__module__.split(".")[0] not in {"httpx2", "httpx", "httpcore", "h11", "requests", "urllib3"}:
            raise
        _drop_incomplete(cache, ref)
        if "ProtocolError" in type(exc).__name__ or "incomplete" in str(exc).lower():
            raise DownloadError(f"the download of {where} was cut short (truncated transfer: {exc}); the partial "
                                "file was removed: try again") from None
        raise DownloadError(f"cannot download {where}: {_cause(exc)}. {offline_message(ref)}") from None
    return Path(path), _check_hf_file(ref, Path(path), meta, url)


def _check_room(folder: Path, size: int | None, where: str) -> None:
    """Refuse a download that cannot fit on the disk of ``folder`` before any byte is written."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if size is not None and free < size:
        raise DownloadError(f"the disk is full: downloading {where} needs {size / 1e6:.1f} MB in {folder}, "
                            f"{free / 1e6:.1f} MB are free; free some space or set HF_HOME to a larger disk")


def _offline_source(ref: WeightsRef, path: Path, url: str) -> _Source:
    """A file the Hugging Face cache already held (offline): checked against the blob name, which
    ``huggingface_hub`` sets to the ETag the server declared when it was downloaded."""
    blob = Path(os.path.realpath(path))
    declared = blob.name
    source = _Source(path, url, file_sha256(path), path.stat().st_size, path.parent.name, [], (blob, path))
    _check_declared(ref, source, declared, path.stat().st_size)
    return source


def _check_hf_file(ref: WeightsRef, path: Path, meta, url: str) -> _Source:
    blob = Path(os.path.realpath(path))
    size = path.stat().st_size
    source = _Source(path, url, file_sha256(path), size, meta.commit_hash, [], (blob, path))
    _check_declared(ref, source, meta.etag, meta.size)
    return source


def _check_declared(ref: WeightsRef, source: _Source, etag: str | None, size: int | None) -> None:
    """Size and hash of a download against what the server declared (and a pinned sha256)."""
    etag = (etag or "").strip('"').lower()
    _check_size(ref, source, size)
    if _SHA256.match(etag):
        _compare(ref, source, etag, "the server declared")
    elif _SHA1.match(etag):
        if _git_blob_sha1(source.path) != etag:
            source.discard()
            raise IntegrityError("sha256", f"{ref.text}: the download's git blob hash does not match the server's "
                                           f"ETag {etag} (corrupted in transit?); it was deleted from the cache: try again")
        source.checks.append("git blob sha1")
    elif ref.sha256 is None:
        source.discard()
        raise IntegrityError("sha256", f"{ref.text}: the server declared no checksum (ETag {etag or 'missing'!r}), so "
                                       "the download cannot be verified; it was deleted from the cache")
    if ref.sha256 is not None:
        _compare(ref, source, ref.sha256, "the pinned sha256 is")


def _compare(ref: WeightsRef, source: _Source, want: str, who: str) -> None:
    if source.sha256 != want:
        source.discard()
        raise IntegrityError("sha256", f"{ref.text}: sha256 mismatch: {who} {want}, the download has {source.sha256} "
                                       "(corrupted in transit, or a different file); it was deleted from the cache: try again")
    source.checks.append("sha256")


def _git_blob_sha1(path: Path) -> str:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _drop_incomplete(cache: Path, ref: WeightsRef) -> None:
    """Remove the partial ``*.incomplete`` files a failed download left in the Hugging Face cache."""
    blobs = cache / f"models--{ref.repo_id.replace('/', '--')}" / "blobs"
    for p in blobs.glob("*.incomplete") if blobs.is_dir() else ():
        with contextlib.suppress(OSError):
            p.unlink()


def _http_message(exc: Exception, where: str, status: int | None = None) -> str:
    """What an HTTP failure means for the user; ``status`` defaults to the one of ``exc.response``."""
    status = status or getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        return (f"access to {where} was refused (HTTP {status}): the repository is private or gated; log in with "
                "`hf auth login` or set HF_TOKEN to a token that may read it")
    if status == 404 or type(exc).__name__ in {"RepositoryNotFoundError", "RevisionNotFoundError", "EntryNotFoundError",
                                               "RemoteEntryNotFoundError"}:
        return f"{where} does not exist (HTTP 404): check the repository, the revision and the file name"
    if status is not None and status >= 500:
        return f"the server failed on {where} (HTTP {status}); try again later, or use a mirror with HF_ENDPOINT"
    return f"cannot download {where}: {_cause(exc)}"


def _os_error(exc: OSError, where: str, cache: Path) -> FaceLiVTError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"the disk is full while downloading {where} into {cache}: free some space or set "
                             "HF_HOME to a larger disk (the partial download was removed)")
    if "Consistency check failed" in str(exc) or "size" in str(exc).lower():
        return DownloadError(f"the download of {where} was cut short (truncated transfer); the partial file was "
                             "removed: try again")
    return DownloadError(f"cannot download {where}: {_cause(exc)}")


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None or exc.__context__ is not None:
        inner = exc.__cause__ or exc.__context__
        if isinstance(inner, (ConnectionRefusedError, TimeoutError)) or "timed out" in str(inner).lower():
            exc = inner
            break
        exc = inner
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, ConnectionRefusedError) or "refused" in text.lower():
        return f"connection refused ({text})"
    if isinstance(exc, TimeoutError) or "timed out" in text.lower() or "timeout" in type(exc).__name__.lower():
        return f"the server stalled: no data within {_timeout():g} s (HF_HUB_DOWNLOAD_TIMEOUT) ({text})"
    return f"{type(exc).__name__}: {text}"


class _SilentTqdm(tqdm):
    def __init__(self, *args, **kwargs):
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


# any https server ---------------------------------------------------------------------------------------
def _download_url(ref: WeightsRef, home: Path, progress: bool) -> tuple[Path, _Source]:
    if hf_offline():
        raise DownloadError(f"HF_HUB_OFFLINE is set and {offline_message(ref)}")
    folder = home / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{ref.key}.part"
    request = urllib.request.Request(ref.url, headers={"User-Agent": "facelivt"})
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as response, open(part, "wb") as out:
            declared = response.headers.get("X-Linked-Etag") or response.headers.get("ETag")
            size = response.headers.get("Content-Length")
            size = int(size) if size and size.isdigit() else None
            _check_room(folder, size, ref.url)
            with tqdm(total=size, unit="B", unit_scale=True, desc=Path(part.stem).name, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(_http_message(exc, ref.url, status=exc.code)) from None
    except OSError as exc:
        part.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(f"the disk is full while downloading {ref.url} into {folder}: free some space or set "
                                f"{ENV_HOME} to a larger disk (the partial download was removed)") from None
        raise DownloadError(f"cannot download {ref.url}: {_cause(exc)}") from None
    source = _Source(part, ref.url, file_sha256(part), part.stat().st_size, None, [], (part,))
    declared = (declared or "").strip('"').lower()
    if _SHA256.match(declared) or ref.sha256 is not None:
        _check_declared(ref, source, declared if _SHA256.match(declared) else None, size)
    else:
        log.warning("%s: the server declared no sha256; accepted on its size alone (sha256 %s recorded); append "
                    "#sha256=HEX to the URL to pin it", ref.url, source.sha256)
        _check_size(ref, source, size)
    return part, source


def _check_size(ref: WeightsRef, source: _Source, size: int | None) -> None:
    if size is not None and source.size != size:
        source.discard()
        raise IntegrityError("size", f"{ref.text}: the download has {source.size} bytes but the server declared "
                                     f"{size} (truncated?); it was deleted from the cache: try again")
    source.checks.append("size")


# ---------------------------------------------------------------------------------------------- converting
def _convert(raw: Path, ref: WeightsRef, variant: str | None, source: _Source) -> tuple[dict, dict, str]:
    """Load the downloaded file safely and turn it into this project's tensors + metadata for ``variant``."""
    try:
        if sniff_format(raw) == SAFETENSORS:
            state_dict, meta = read_safetensors(raw)
            stored = None
        else:
            state_dict, stored = unwrap_checkpoint(safe_torch_load(raw, what="weights"))
            meta = {}
    except UnsafeCheckpointError as exc:
        raise IntegrityError("weights_only", f"{exc}; it was deleted from the cache") from None
    except (CheckpointReadError, CheckpointMismatchError, InvalidInputError) as exc:
        raise IntegrityError("weights_only", f"{ref.text}: {exc}; it was deleted from the cache") from None
    source.checks.append("weights_only")
    try:
        if is_released_layout(state_dict):
            variant = variant or stored or _infer_variant(state_dict)
            state_dict = convert_released_state_dict(state_dict, variant)
            meta = {"format": "facelivt", "model": variant, "form": "train"}
        else:
            variant = variant or meta.get("model")
            if not variant:
                raise CheckpointMismatchError("the file names no model: give the model name (--model)")
            if meta.get("model") and meta["model"] != variant:
                raise CheckpointMismatchError(f"it holds weights of {meta['model']!r}, not {variant!r}")
            fit_state_dict(variant, state_dict, meta, what=ref.text)
            meta = {**meta, "format": "facelivt", "model": variant, "form": meta.get("form", "train")}
    except CheckpointMismatchError as exc:
        raise IntegrityError("variant", f"{ref.text} does not fit {variant or 'any FaceLiVT variant'}: {exc}; it was "
                                        "deleted from the cache") from None
    _check_finite(state_dict, ref)
    return {k: v.detach().contiguous() for k, v in state_dict.items()}, meta, variant


def released_variant(state_dict: dict) -> str | None:
    """The FaceLiVT variant whose released layout ``state_dict`` fits exactly, or None."""
    for name in [*VARIANTS, *V2_VARIANTS]:
        try:
            convert_released_state_dict(state_dict, name)
        except CheckpointMismatchError:
            continue
        return name
    return None


def _infer_variant(state_dict: dict) -> str:
    variant = released_variant(state_dict)
    if variant is None:
        raise CheckpointMismatchError("no FaceLiVT variant fits its keys and shapes")
    return variant


def _check_finite(state_dict: dict, ref: WeightsRef) -> None:
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise IntegrityError("finite", f"{ref.text}: {len(bad)} tensor(s) hold NaN or infinite values "
                                       f"({', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}); it was deleted from the cache")
