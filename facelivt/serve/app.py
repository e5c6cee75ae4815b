"""The HTTP API of ``facelivt serve`` (FastAPI): :func:`create_app` builds it from a
:class:`~facelivt.serve.config.ServeConfig`, loading the model once.

A request: the limits middleware counts its body and times it; a route reads the uploads, checks the
key (:class:`Access`), decodes and detects on the engine's threads, embeds through the micro-batcher
and calls the gallery on a gallery thread; every error becomes ``{"error": {"code", "message"}}``."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import numpy as np

from facelivt.extras import require
from facelivt.serve.audit import AuditLog
from facelivt.serve.config import ServeConfig
from facelivt.serve.engine import Engine, Photo
from facelivt.serve.errors import ERROR_HEADER, STATUS_CODES, ApiError, body, from_library
from facelivt.serve.galleries import Galleries
from facelivt.serve.keys import KeyStore, allows, default_keys_path
from facelivt.serve.limits import LimitsMiddleware, check_identity_name, gallery_name
from facelivt.serve.metrics import Metrics

require("fastapi", "facelivt serve")
require("python_multipart", "facelivt serve (photo uploads)")
from fastapi import FastAPI, File, Form, Request, UploadFile  # noqa: E402 - after the extra's check
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import FileResponse, JSONResponse, Response  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402

log = logging.getLogger(__name__)

#: The folder of the web page (package data).
STATIC = Path(str(resources.files("facelivt.serve"))) / "static"


class Access:
    """Who may do what: the API keys of ``path`` (none active: no key needed, loopback only)."""

    def __init__(self, path: str | None, audit: AuditLog) -> None:
        self.store = KeyStore(path if path else default_keys_path())
        self.audit = audit

    def check(self, request: Request, write: bool, gallery: str | None) -> str | None:
        """The id of the request's key (None when no key is needed), else 401 / 403."""
        if not self.store.any_active():
            return None
        token = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if token is None and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        key = self.store.check(token) if token else None
        what = f"{request.method} {request.url.path}"
        if key is None:
            self.audit.record(key_id=None, action="refused", gallery=gallery or "", identity="", request=what,
                              reason="no key" if not token else "unknown or revoked key")
            raise ApiError(401, "unauthorized", "this server needs an API key (header x-api-key: KEY or "
                                                "Authorization: Bearer KEY)" if not token else "unknown or revoked API key")
        if not allows(key, write, gallery):
            self.audit.record(key_id=key.id, action="refused", gallery=gallery or "", identity="", request=what,
                              reason="scope")
            need = "write" if write else "read"
            where = f" on gallery {gallery!r}" if gallery else ""
            raise ApiError(403, "forbidden", f"API key {key.id} may not {need}{where}")
        return key.id


class Service:
    """What the routes share: config, metrics, engine, galleries, access and audit log."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.audit = AuditLog(config.audit_log)
        self.access = Access(config.keys, self.audit)
        self.metrics = Metrics(lambda: self.engine.batcher.waiting)
        self.engine = Engine(config, self.metrics)
        rec = self.engine.recognizer
        self.galleries = Galleries(config.gallery, dim=self.engine.dim, metadata=rec.gallery_metadata())

    async def authorize(self, request: Request, write: bool = False, gallery: str | None = None) -> str | None:
        try:
            return await self.engine.run(self.access.check, request, write, gallery)
        except Exception as exc:  # noqa: BLE001 - a damaged key store: its error, as an API error
            raise from_library(exc) from None

    async def photos(self, files: list[UploadFile], largest: bool = False, aligned: bool = False) -> list[Photo]:
        """The uploads decoded and detected (aligned crops taken as they are), in their order."""
        uploads = [(await f.read(), f.filename or f"upload {i + 1}") for i, f in enumerate(files)]
        if aligned:
            jobs = [self.engine.run(self.engine.crop, data, name) for data, name in uploads]
        else:
            jobs = [self.engine.run(self.engine.photo, data, name, largest) for data, name in uploads]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise from_library(r) from None
        return results

    def close(self) -> None:
        self.engine.close()
        self.galleries.close()
        self.audit.close()


# ---------------------------------------------------------------------------------------------- app
def create_app(config: ServeConfig) -> FastAPI:
    """The service's app: the model is loaded now (once), the routes, limits, CORS and error handlers
    set up; its lifespan's end drains the batcher and closes the galleries."""
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.close()

    app = FastAPI(title="facelivt serve", version="1", lifespan=lifespan,
                  description="Face detection, embedding, verification and galleries with a FaceLiVT model.")
    app.state.service = service
    _error_handlers(app, service)
    _photo_routes(app, service)
    _gallery_routes(app, service)
    _enrol_route(app, service)
    _identity_routes(app, service)
    _other_routes(app, service)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(LimitsMiddleware, max_bytes=config.max_upload_bytes, timeout=config.request_timeout)
    app.add_middleware(MetricsMiddleware, metrics=service.metrics)
    return app


def app_from_env() -> FastAPI:
    """The app of a uvicorn worker process: its config comes from ``facelivt serve`` in the environment."""
    return create_app(ServeConfig.from_env())


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(body(code, message), status_code=status, headers={ERROR_HEADER: code})


def _error_handlers(app: FastAPI, service: Service) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors()[:5]:
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error_response(422, "validation_error", "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        code = STATUS_CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"no such route: {request.method} {request.url.path}"
        return error_response(exc.status_code, code, message)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        err = from_library(exc)
        return error_response(err.status, err.code, err.message)


class MetricsMiddleware:
    """ASGI middleware counting every request by route template, method and status, its latency, and
    error responses by code."""

    def __init__(self, app, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen = {"status": 500, "code": None}

        async def counting_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.decode("latin-1").lower() == ERROR_HEADER:
                        seen["code"] = v.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "unmatched")
            self.metrics.request(path, scope.get("method", ""), seen["status"], time.perf_counter() - start)
            if seen["status"] >= 400:
                self.metrics.error(seen["code"] or STATUS_CODES.get(seen["status"], "internal"))


# ---------------------------------------------------------------------------------------------- photos
def _photo_routes(app: FastAPI, service: Service) -> None:
    engine = service.engine
    side = engine.side

    @app.post("/v1/detect", tags=["photos"], summary="the faces of a photo")
    async def detect(request: Request, image: UploadFile = File(...)):
        await service.authorize(request)
        data = await image.read()
        try:
            photo = await engine.run(engine.detect, data, image.filename or "image")
        except Exception as exc:  # noqa: BLE001
            raise from_library(exc) from None
        return {"faces": [f.to_dict(side) for f in photo.faces], "width": photo.width, "height": photo.height}

    @app.post("/v1/embed", tags=["photos"], summary="embeddings of the faces of photos (or of aligned crops)")
    async def embed(request: Request, images: list[UploadFile] = File(...), aligned: bool = Form(False),
                    face: str = Form("all", pattern="^(all|largest)$")):
        await service.authorize(request)
        photos = await service.photos(images, largest=face == "largest", aligned=aligned)
        rows = await _embed(service, [f.crop for p in photos for f in p.faces])
        results, at = [], 0
        for p in photos:
            faces = [f.to_dict(side, rows[at + i]) for i, f in enumerate(p.faces)]
            at += len(p.faces)
            results.append({"file": p.name, "faces": faces})
        rec = engine.recognizer
        return {"results": results, "model": rec.model_name, "dim": engine.dim}

    @app.post("/v1/verify", tags=["photos"], summary="are the faces of two photos the same person?")
    async def verify(request: Request, image1: UploadFile = File(...), image2: UploadFile = File(...)):
        await service.authorize(request)
        a, b = await service.photos([image1, image2], largest=True)
        _need_faces([a, b])
        e = await _embed(service, [a.faces[0].crop, b.faces[0].crop])
        score = float(np.clip(e[0].astype(np.float64) @ e[1].astype(np.float64), -1.0, 1.0))
        rec = engine.recognizer
        return {"score": round(score, 6), "same": score >= rec.threshold, "threshold": rec.threshold,
                "threshold_source": rec.threshold_source, "reliable": rec.reliable,
                "faces": [a.faces[0].to_dict(side), b.faces[0].to_dict(side)]}


async def _embed(service: Service, crops: list) -> np.ndarray:
    try:
        return await service.engine.embed(crops)
    except Exception as exc:  # noqa: BLE001
        raise from_library(exc) from None


def _need_faces(photos: list[Photo]) -> None:
    """422 ``no_face`` naming the first photo without a face."""
    for p in photos:
        if not p.faces:
            raise ApiError(422, "no_face", f"{p.name}: no face found")


# ---------------------------------------------------------------------------------------------- galleries
class Rename(BaseModel):
    name: str


def identity_dict(info) -> dict:
    return {"name": info.name, "embeddings": info.embeddings, "photos": info.photos, "created": info.added,
            "updated": info.updated}


def _gallery_routes(app: FastAPI, service: Service) -> None:
    galleries = service.galleries

    @app.get("/v1/galleries", tags=["galleries"], summary="the galleries and their sizes")
    async def list_galleries(request: Request):
        await service.authorize(request)
        names = await galleries.call(galleries.set.names)
        out = []
        for name in names:
            try:
                n = await galleries.with_gallery(name, len)
            except ApiError as exc:
                if exc.code != "not_found":  # removed meanwhile
                    raise
                continue
            out.append({"name": name, "identities": n})
        return {"galleries": out}

    @app.post("/v1/galleries/{g}/identify", tags=["galleries"], summary="the closest identities to a face")
    async def identify(request: Request, g: str, image: UploadFile = File(...), k: int = Form(5, ge=1, le=1000)):
        gallery_name(g)
        await service.authorize(request, gallery=g)
        (photo,) = await service.photos([image], largest=True)
        _need_faces([photo])
        (e,) = await _embed(service, [photo.faces[0].crop])
        rec = service.engine.recognizer

        def search(gallery):
            threshold, source = gallery.threshold_for(rec.threshold, rec.threshold_source)
            matches = gallery.search(e, k)[0] if len(gallery) else []
            return threshold, source, matches

        threshold, source, matches = await galleries.with_gallery(g, search)
        return {"face": photo.faces[0].to_dict(service.engine.side),
                "matches": [{"name": m.name, "score": round(float(m.score), 6), "accepted": m.score >= threshold}
                            for m in matches],
                "threshold": threshold, "threshold_source": source, "reliable": rec.reliable}


def _enrol_route(app: FastAPI, service: Service) -> None:
    galleries = service.galleries

    @app.post("/v1/galleries/{g}/identities", status_code=201, tags=["galleries"],
              summary="enrol a person from photos (one transaction: all photos or none)")
    async def enroll(request: Request, g: str, name: str = Form(...), images: list[UploadFile] = File(...)):
        gallery_name(g)
        check_identity_name(name)
        key_id = await service.authorize(request, write=True, gallery=g)
        photos = await service.photos(images, largest=True)
        _need_faces(photos)
        e = await _embed(service, [p.faces[0].crop for p in photos])
        hashes = [p.sha256 for p in photos]

        def add(gallery):
            added = gallery.enroll_embeddings(name, e, sources=[p.name for p in photos], hashes=hashes)
            return added, gallery.identity(name).embeddings

        added, total = await galleries.with_gallery(g, add, create=True)
        service.audit.record(key_id=key_id, action="enroll", gallery=g, identity=name, added=added, photos=len(photos))
        return {"gallery": g, "identity": name, "added": added, "embeddings": total}


def _identity_routes(app: FastAPI, service: Service) -> None:
    galleries = service.galleries

    @app.get("/v1/galleries/{g}/identities", tags=["galleries"], summary="the identities of a gallery")
    async def identities(request: Request, g: str):
        gallery_name(g)
        await service.authorize(request, gallery=g)
        infos = await galleries.with_gallery(g, lambda gallery: gallery.identities())
        return {"gallery": g, "identities": [identity_dict(i) for i in infos]}

    @app.get("/v1/galleries/{g}/identities/{name:path}", tags=["galleries"], summary="one identity")
    async def identity(request: Request, g: str, name: str):
        gallery_name(g)
        await service.authorize(request, gallery=g)
        return identity_dict(await galleries.with_gallery(g, lambda gallery: gallery.identity(name)))

    @app.patch("/v1/galleries/{g}/identities/{name:path}", tags=["galleries"], summary="rename an identity")
    async def rename(request: Request, g: str, name: str, change: Rename):
        gallery_name(g)
        new = check_identity_name(change.name)
        key_id = await service.authorize(request, write=True, gallery=g)

        def do(gallery):
            if name not in gallery:
                raise ApiError(404, "not_found", f"identity {name!r} is not in gallery {g!r}")
            if new != name and new in gallery:
                raise ApiError(409, "conflict", f"identity {new!r} is in gallery {g!r} already")
            if new != name:
                gallery.rename(name, new)
            return gallery.identity(new)

        info = await galleries.with_gallery(g, do)
        service.audit.record(key_id=key_id, action="rename", gallery=g, identity=name, new_name=new)
        return identity_dict(info)

    @app.delete("/v1/galleries/{g}/identities/{name:path}", tags=["galleries"],
                summary="forget an identity and all its embeddings")
    async def delete(request: Request, g: str, name: str):
        gallery_name(g)
        key_id = await service.authorize(request, write=True, gallery=g)

        def do(gallery):
            n = gallery.identity(name).embeddings
            gallery.remove(name)
            return n

        n = await galleries.with_gallery(g, do)
        service.audit.record(key_id=key_id, action="delete", gallery=g, identity=name, embeddings=n)
        return {"deleted": name, "embeddings": n}


# ---------------------------------------------------------------------------------------------- the rest
def _other_routes(app: FastAPI, service: Service) -> None:
    @app.get("/v1/health", tags=["service"], summary="liveness and readiness")
    async def health():
        reachable = await service.galleries.reachable()
        rec = service.engine.recognizer
        payload = {"status": "ok" if reachable else "degraded", "live": True, "ready": reachable,
                   "model": {"name": rec.model_name, "weights": rec.weights_source, "backend": service.engine.backend,
                             "loaded": True},
                   "gallery": {"kind": service.galleries.kind, "reachable": reachable}}
        return JSONResponse(payload, status_code=200 if reachable else 503)

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics")
    async def metrics(request: Request):
        await service.authorize(request)
        text, content_type = service.metrics.text()
        return Response(text, media_type=content_type)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        page = STATIC / "index.html"
        if not page.is_file():
            raise ApiError(404, "not_found", "this installation has no web page")
        return FileResponse(page)
