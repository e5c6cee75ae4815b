"""With an active API key the service needs one: scopes and gallery limits are enforced, the open
routes stay open, and enrol / rename / delete and refused keys are written to the audit log."""
from __future__ import annotations

import json

import httpx
import pytest

from facelivt.serve.keys import KeyStore
from serve_helpers import start_server, upload


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    store = KeyStore(folder / "keys.sqlite")
    tokens = {"read": store.create("reader")[1], "write": store.create("writer", scope="write")[1],
              "only_a": store.create("a-writer", scope="write", gallery="ga")[1]}
    revoked, revoked_token = store.create("old", scope="write")
    store.revoke(revoked.id)
    tokens["revoked"] = revoked_token
    s = start_server(folder, "--audit-log", str(folder / "audit.jsonl"))
    s.tokens = tokens
    s.audit = folder / "audit.jsonl"
    yield s
    assert s.stop() == 0, s.log()[-3000:]


def _code(r) -> str:
    return r.json()["error"]["code"]


def test_open_routes_need_no_key(guarded):
    with guarded.client() as c:
        assert c.get("/v1/health").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/").status_code == 200


def test_a_missing_wrong_or_revoked_key_is_unauthorized(guarded, single_face_photos):
    photo = next(iter(single_face_photos.values()))[0]
    with guarded.client() as c:
        assert _code(c.post("/v1/detect", files=[upload(photo)])) == "unauthorized"
        assert c.get("/metrics").status_code == 401
        for token in ("nonsense", guarded.tokens["revoked"], guarded.tokens["read"][:-2] + "xx"):
            r = c.get("/v1/galleries", headers={"x-api-key": token})
            assert r.status_code == 401 and _code(r) == "unauthorized"
            assert token not in r.text


def test_scopes_and_gallery_limits(guarded, single_face_photos):
    photo = next(iter(single_face_photos.values()))[0]
    read, write, only_a = (guarded.tokens[k] for k in ("read", "write", "only_a"))
    with guarded.client() as c:
        assert c.post("/v1/detect", files=[upload(photo)], headers={"x-api-key": read}).status_code == 200
        assert c.get("/metrics", headers={"authorization": f"Bearer {read}"}).status_code == 200
        enrol = dict(data={"name": "eve"}, files=[upload(photo, "images")])
        r = c.post("/v1/galleries/ga/identities", headers={"x-api-key": read}, **enrol)
        assert r.status_code == 403 and _code(r) == "forbidden"
        assert c.post("/v1/galleries/ga/identities", headers={"x-api-key": only_a}, **enrol).status_code == 201
        r = c.post("/v1/galleries/gb/identities", headers={"x-api-key": only_a}, **enrol)
        assert r.status_code == 403 and _code(r) == "forbidden"
        r = c.get("/v1/galleries/gb/identities", headers={"x-api-key": only_a})
        assert r.status_code == 403
        assert c.post("/v1/galleries/gb/identities", headers={"authorization": f"Bearer {write}"},
                      **enrol).status_code == 201
        assert c.get("/v1/galleries/gb/identities", headers={"x-api-key": read}).status_code == 200


def test_changes_and_refusals_are_audited(guarded, single_face_photos):
    photo = next(iter(single_face_photos.values()))[1]
    write = guarded.tokens["write"]
    key_id = KeyStore(guarded.keys).check(write).id
    with guarded.client(headers={"x-api-key": write}) as c:
        assert c.post("/v1/galleries/au/identities", data={"name": "fay"}, files=[upload(photo, "images")]).status_code == 201
        assert c.patch("/v1/galleries/au/identities/fay", json={"name": "faye"}).status_code == 200
        assert c.delete("/v1/galleries/au/identities/faye").status_code == 200
    httpx.get(guarded.url + "/v1/galleries", timeout=30)  # refused: no key
    lines = [json.loads(line) for line in guarded.audit.read_text().splitlines()]
    mine = [(e["action"], e["identity"], e["key_id"]) for e in lines if e["gallery"] == "au"]
    assert mine == [("enroll", "fay", key_id), ("rename", "fay", key_id), ("delete", "faye", key_id)]
    assert any(e["action"] == "refused" and e["key_id"] is None for e in lines)
    assert all(write not in json.dumps(e) for e in lines)
