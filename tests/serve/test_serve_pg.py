"""The service with its galleries in PostgreSQL (the ``pg_server`` fixture): two worker processes see
each other's enrolments, and PostgreSQL restarting under load makes requests fail with 503
``gallery_unavailable``, then succeed again, without restarting the service."""
from __future__ import annotations

import threading
import time
from collections import Counter

from serve_helpers import start_server, upload

from facelivt.inference import Gallery

#: Seconds a test waits for the service to get through to PostgreSQL again (bounded; ends when it does).
PATIENCE = 60.0


def test_two_workers_share_one_gallery_in_postgresql(tmp_path, pg_database, single_face_photos):
    server = start_server(tmp_path, "--workers", "2", "--gallery", pg_database)
    people = sorted(single_face_photos.items())[:3]
    try:
        for name, photos in people:  # a new connection each: the enrolments land on either worker
            with server.client() as c:
                r = c.post("/v1/galleries/staff/identities", data={"name": name},
                           files=[upload(p, "images") for p in photos[:2]])
                assert r.status_code == 201, r.text
        expected = [(name, 2) for name, _ in people]
        for _ in range(6):  # every worker sees every enrolment (LISTEN / NOTIFY)
            with server.client() as c:
                listed = c.get("/v1/galleries/staff/identities").json()["identities"]
                assert [(i["name"], i["embeddings"]) for i in listed] == expected
                assert c.get("/v1/galleries").json()["galleries"] == [{"name": "staff", "identities": 3}]
        for name, photos in people:
            with server.client() as c:
                r = c.post("/v1/galleries/staff/identify", files=[upload(photos[1])])  # enrolled: its own identity
                assert r.status_code == 200 and r.json()["matches"][0]["name"] == name, r.text
            with server.client() as c:
                assert c.get("/v1/health").json()["gallery"] == {"kind": "postgresql", "reachable": True}
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    with Gallery.open(f"{pg_database}?gallery=staff") as g:
        assert g.names == [name for name, _ in people] and g.num_embeddings == 6


def _hammer(server, stop: threading.Event, seen: Counter, lock: threading.Lock) -> None:
    """List identities again and again (a new connection now and then) until ``stop``; count the answers."""
    while not stop.is_set():
        with server.client(timeout=60) as c:
            for _ in range(5):
                r = c.get("/v1/galleries/staff/identities")
                code = r.json().get("error", {}).get("code", "") if r.status_code != 200 else ""
                with lock:
                    seen[(r.status_code, code)] += 1


def test_postgresql_restarting_under_load(tmp_path, pg_server, pg_database, single_face_photos):
    url = pg_database.replace("facelivt@", "facelivt:s3cret@")  # trust: the password is unused, never shown
    server = start_server(tmp_path, "--workers", "2", "--gallery", url)
    (name, photos), (other, more) = sorted(single_face_photos.items())[:2]
    stop, seen, lock = threading.Event(), Counter(), threading.Lock()
    threads = [threading.Thread(target=_hammer, args=(server, stop, seen, lock)) for _ in range(3)]
    try:
        with server.client() as c:
            r = c.post("/v1/galleries/staff/identities", data={"name": name}, files=[upload(photos[0], "images")])
            assert r.status_code == 201, r.text
        for t in threads:
            t.start()
        pg_server.stop()
        with server.client() as c:
            r = c.post("/v1/galleries/staff/identify", files=[upload(photos[1])])
            assert r.status_code == 503 and r.json()["error"]["code"] == "gallery_unavailable", r.text
            assert "s3cret" not in r.text
            r = c.post("/v1/galleries/staff/identities", data={"name": other}, files=[upload(more[0], "images")])
            assert r.status_code == 503 and r.json()["error"]["code"] == "gallery_unavailable", r.text
            health = c.get("/v1/health")
            assert health.status_code == 503 and health.json()["gallery"]["reachable"] is False
        pg_server.start()
        deadline = time.monotonic() + PATIENCE
        while True:  # every worker gets through again by itself
            with server.client() as c:
                ok = all(c.get("/v1/galleries/staff/identities").status_code == 200 for _ in range(6))
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ok, server.log()[-3000:]
        with server.client() as c:
            r = c.post("/v1/galleries/staff/identities", data={"name": other}, files=[upload(more[0], "images")])
            assert r.status_code == 201, r.text
            r = c.post("/v1/galleries/staff/identify", files=[upload(photos[0])])
            assert r.status_code == 200 and r.json()["matches"][0]["name"] == name, r.text
    finally:
        stop.set()
        for t in threads:
            t.join(120)
        if pg_server.proc is None:
            pg_server.start()
        assert server.stop() == 0, server.log()[-3000:]
    assert server.proc.returncode == 0  # the same service all along
    assert "s3cret" not in server.log()
    assert set(seen) <= {(200, ""), (503, "gallery_unavailable")}, seen  # never a 500
    assert seen[(503, "gallery_unavailable")] > 0 and seen[(200, "")] > 0, seen
