"""Every endpoint of ``facelivt serve`` on real photos, through a real server process."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serve_helpers import ALIGNED, upload


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def people(single_face_photos):
    """Three identities with four single-face photos each."""
    names = sorted(single_face_photos)[:3]
    return {n: single_face_photos[n][:4] for n in names}


def _face_ok(face: dict, width: int, height: int) -> None:
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
    assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
    assert 0 < face["score"] <= 1


def test_health_says_ready_with_the_model_and_backend(client):
    r = client.get("/v1/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["live"] is True and h["ready"] is True
    assert h["model"]["name"] == "facelivt_s" and h["model"]["loaded"] is True
    assert h["model"]["backend"] in ("onnxruntime", "torchscript", "compile", "eager")
    assert h["gallery"] == {"kind": "sqlite", "reachable": True}


def test_detect_finds_the_face_of_a_photo(client, people):
    photo = next(iter(people.values()))[0]
    r = client.post("/v1/detect", files=[upload(photo)])
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["width"], d["height"]) == Image.open(photo).size
    assert len(d["faces"]) == 1
    _face_ok(d["faces"][0], d["width"], d["height"])
    assert "embedding" not in d["faces"][0]


def test_embed_photos_gives_unit_embeddings_per_face(client, people):
    photos = [p[0] for p in people.values()]
    r = client.post("/v1/embed", files=[upload(p, "images") for p in photos])
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["model"] == "facelivt_s" and d["dim"] > 0
    assert [x["file"] for x in d["results"]] == [p.name for p in photos]
    for result in d["results"]:
        assert len(result["faces"]) == 1
        e = np.array(result["faces"][0]["embedding"])
        assert e.shape == (d["dim"],) and np.linalg.norm(e) == pytest.approx(1.0, abs=1e-4)


def test_embed_aligned_crops_uses_them_as_given(client):
    crops = sorted((ALIGNED / "7201").glob("*.jpg"))[:2]
    r = client.post("/v1/embed", files=[upload(p, "images") for p in crops], data={"aligned": "true"})
    assert r.status_code == 200, r.text
    for result in r.json()["results"]:
        (face,) = result["faces"]
        assert face["box"] == [0.0, 0.0, 112.0, 112.0] and face["landmarks"] is None


def test_embed_of_the_same_photo_twice_is_the_same(client, people):
    photo = next(iter(people.values()))[1]
    a, b = (client.post("/v1/embed", files=[upload(photo, "images")]).json() for _ in range(2))
    ea, eb = (np.array(x["results"][0]["faces"][0]["embedding"]) for x in (a, b))
    assert float(ea @ eb) == pytest.approx(1.0, abs=1e-4)


def test_verify_a_photo_against_itself_scores_one(client, people):
    photo = next(iter(people.values()))[0]
    r = client.post("/v1/verify", files=[upload(photo, "image1"), upload(photo, "image2")])
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["score"] == pytest.approx(1.0, abs=1e-3) and v["same"] is True
    assert set(v) == {"score", "same", "threshold", "threshold_source", "reliable", "faces"}
    assert len(v["faces"]) == 2 and isinstance(v["threshold_source"], str)


def test_verify_scores_are_cosines_and_verdicts_follow_the_threshold(client, people):
    (a, b) = list(people.values())[:2]
    for x, y in ((a[0], a[1]), (a[0], b[0])):
        v = client.post("/v1/verify", files=[upload(x, "image1"), upload(y, "image2")]).json()
        assert -1.0 <= v["score"] <= 1.0
        assert v["same"] is (v["score"] >= v["threshold"])


def test_gallery_lifecycle_enrol_list_identify_rename_delete(client, people):
    (n1, p1), (n2, p2) = list(people.items())[:2]
    r = client.post("/v1/galleries/life/identities", data={"name": "ann"}, files=[upload(p, "images") for p in p1[:3]])
    assert r.status_code == 201, r.text
    assert r.json() == {"gallery": "life", "identity": "ann", "added": 3, "embeddings": 3}
    r = client.post("/v1/galleries/life/identities", data={"name": "bo"}, files=[upload(p, "images") for p in p2[:2]])
    assert r.status_code == 201
    assert {"name": "life", "identities": 2} in client.get("/v1/galleries").json()["galleries"]
    listed = client.get("/v1/galleries/life/identities").json()
    assert listed["gallery"] == "life"
    assert [(i["name"], i["embeddings"], i["photos"]) for i in listed["identities"]] == [("ann", 3, 3), ("bo", 2, 2)]
    one = client.get("/v1/galleries/life/identities/ann").json()
    assert set(one) == {"name", "embeddings", "photos", "created", "updated"} and one["embeddings"] == 3
    # an enrolled photo finds its own identity first
    found = client.post("/v1/galleries/life/identify", files=[upload(p1[0])], data={"k": "5"}).json()
    assert found["matches"][0]["name"] == "ann" and len(found["matches"]) == 2
    assert all(m["accepted"] is (m["score"] >= found["threshold"]) for m in found["matches"])
    assert set(found) == {"face", "matches", "threshold", "threshold_source", "reliable"}
    # rename, and a rename onto an existing name is a conflict
    r = client.patch("/v1/galleries/life/identities/ann", json={"name": "anna"})
    assert r.status_code == 200 and r.json()["name"] == "anna"
    r = client.patch("/v1/galleries/life/identities/anna", json={"name": "bo"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert client.get("/v1/galleries/life/identities/ann").status_code == 404
    r = client.delete("/v1/galleries/life/identities/anna")
    assert r.status_code == 200 and r.json() == {"deleted": "anna", "embeddings": 3}
    assert [i["name"] for i in client.get("/v1/galleries/life/identities").json()["identities"]] == ["bo"]
    r = client.delete("/v1/galleries/life/identities/anna")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_enrolling_the_same_photos_again_adds_none(client, people):
    photos = list(people.values())[2][:2]
    first = client.post("/v1/galleries/again/identities", data={"name": "cy"}, files=[upload(p, "images") for p in photos])
    second = client.post("/v1/galleries/again/identities", data={"name": "cy"}, files=[upload(p, "images") for p in photos])
    assert first.json()["added"] == 2
    assert second.status_code == 201 and second.json()["added"] == 0 and second.json()["embeddings"] == 2


def test_an_identity_name_with_a_slash_is_addressable(client, people):
    photo = list(people.values())[1][3]
    r = client.post("/v1/galleries/slash/identities", data={"name": "a/b c"}, files=[upload(photo, "images")])
    assert r.status_code == 201, r.text
    assert client.get("/v1/galleries/slash/identities/a%2Fb%20c").json()["name"] == "a/b c"
    assert client.delete("/v1/galleries/slash/identities/a/b c").json() == {"deleted": "a/b c", "embeddings": 1}


def test_an_unknown_gallery_is_not_found(client, people):
    photo = next(iter(people.values()))[0]
    for r in (client.get("/v1/galleries/nobody/identities"), client.get("/v1/galleries/nobody/identities/x"),
              client.post("/v1/galleries/nobody/identify", files=[upload(photo)])):
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_metrics_count_requests_batches_and_model_time(client, people):
    client.post("/v1/embed", files=[upload(next(iter(people.values()))[0], "images")])
    text = client.get("/metrics").text
    for name in ("facelivt_requests_total", "facelivt_request_seconds_bucket", "facelivt_batch_size_bucket",
                 "facelivt_model_seconds_per_image_bucket", "facelivt_queue_depth"):
        assert name in text
    assert 'route="/v1/embed"' in text and 'status="200"' in text


def test_page_docs_and_openapi_are_served(client):
    assert client.get("/").headers["content-type"].startswith("text/html")
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/detect", "/v1/embed", "/v1/verify", "/v1/galleries", "/v1/galleries/{g}/identities",
            "/v1/galleries/{g}/identities/{name}", "/v1/galleries/{g}/identify", "/v1/health"} <= set(paths)


def test_cors_is_off_by_default(client):
    r = client.options("/v1/health", headers={"origin": "http://elsewhere.test", "access-control-request-method": "GET"})
    assert "access-control-allow-origin" not in r.headers
