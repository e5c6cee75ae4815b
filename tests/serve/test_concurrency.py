"""Concurrent clients: enrolments and identifications at once lose nothing, and the crops of concurrent
embed requests go through the model together (micro-batching is behaviour: the batch-size metric
records a model call with crops of several requests)."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from serve_helpers import ALIGNED, start_server, upload

CLIENTS = 6


def test_concurrent_enrolments_and_identifications_lose_nothing(server, single_face_photos):
    people = dict(sorted(single_face_photos.items())[:CLIENTS])
    seed_name, seed_photos = next(iter(people.items()))
    with server.client() as c:
        assert c.post("/v1/galleries/busy/identities", data={"name": "seed"},
                      files=[upload(seed_photos[3], "images")]).status_code == 201

    def enrol(item):
        name, photos = item
        with server.client() as c:
            r = c.post("/v1/galleries/busy/identities", data={"name": name},
                       files=[upload(p, "images") for p in photos[:3]])
            return r.status_code, r.json()

    def identify(photo):
        with server.client() as c:
            r = c.post("/v1/galleries/busy/identify", files=[upload(photo)])
            return r.status_code, r.json()

    with ThreadPoolExecutor(2 * CLIENTS) as pool:
        enrolled = pool.map(enrol, people.items())
        found = pool.map(identify, [p[3] for p in people.values()])
        enrolled, found = list(enrolled), list(found)
    assert all(status == 201 and body["added"] == 3 for status, body in enrolled), enrolled
    assert all(status == 200 and body["matches"] for status, body in found), found
    with server.client() as c:
        listed = c.get("/v1/galleries/busy/identities").json()["identities"]
    assert sorted((i["name"], i["embeddings"]) for i in listed) == sorted([("seed", 1)] + [(n, 3) for n in people])


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """A server whose first crop waits up to 3 s for others (a batch of 64 is never full here)."""
    s = start_server(tmp_path_factory.mktemp("batching"), "--max-batch", "64", "--max-wait-ms", "3000")
    yield s
    assert s.stop() == 0, s.log()[-3000:]


def _histogram(text: str, name: str) -> dict[str, float]:
    """The cumulative bucket counts of histogram ``name`` in Prometheus text, by their ``le``."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M)}


def test_concurrent_embed_requests_share_model_calls(patient):
    crops = sorted((ALIGNED / "7202").glob("*.jpg"))[:8]

    def embed(path):
        with patient.client() as c:
            r = c.post("/v1/embed", files=[upload(path, "images")], data={"aligned": "true"})
            return r.status_code

    with ThreadPoolExecutor(len(crops)) as pool:
        assert list(pool.map(embed, crops)) == [200] * len(crops)
    with patient.client() as c:
        text = c.get("/metrics").text
    buckets = _histogram(text, "facelivt_batch_size")
    calls = buckets["+Inf"]
    assert float(re.search(r"^facelivt_batch_size_sum (\S+)$", text, re.M).group(1)) == len(crops)
    assert calls < len(crops)  # fewer model calls than requests: some call held crops of several
    assert buckets["1.0"] < calls  # a call of more than one crop
