"""Starting and stopping: SIGTERM lets the requests in flight finish and exits 0; SIGKILL during
enrolments leaves no half enrolment; no key means loopback only; several worker processes share one
gallery."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from facelivt.inference.gallery import Gallery
from serve_helpers import ALIGNED, WEIGHTS, server_env, start_server, upload


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(tmp_path):
    server = start_server(tmp_path)
    crop = sorted((ALIGNED / "7203").glob("*.jpg"))[0]
    request = httpx.Request("POST", server.url + "/v1/embed", files=[upload(crop, "images")], data={"aligned": "true"})
    body = request.read()
    half_sent, go_on = threading.Event(), threading.Event()

    def slowly():  # the body in two halves: SIGTERM arrives while the request is being uploaded
        yield body[: len(body) // 2]
        half_sent.set()
        go_on.wait(60)
        yield body[len(body) // 2:]

    answer = {}

    def embed():
        headers = {"content-type": request.headers["content-type"], "content-length": str(len(body))}
        r = httpx.post(server.url + "/v1/embed", content=slowly(), headers=headers, timeout=60)
        answer["status"], answer["body"] = r.status_code, r.json()

    thread = threading.Thread(target=embed)
    thread.start()
    assert half_sent.wait(60)
    time.sleep(0.5)  # the server has the first half
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # it is draining now
    go_on.set()
    thread.join(60)
    assert answer["status"] == 200, answer
    assert len(answer["body"]["results"][0]["faces"]) == 1
    assert server.proc.wait(60) == 0, server.log()[-3000:]
    assert "Traceback" not in server.log()


def test_sigkill_during_enrolments_leaves_no_half_enrolment(tmp_path, single_face_photos):
    server = start_server(tmp_path)
    people = dict(sorted(single_face_photos.items())[:10])
    done = []

    def enrol(item):
        name, photos = item
        try:
            r = httpx.post(server.url + "/v1/galleries/kill/identities", data={"name": name},
                           files=[upload(p, "images") for p in photos[:4]], timeout=60)
            done.append((name, r.status_code))
        except httpx.TransportError:
            pass  # the server died under it

    with ThreadPoolExecutor(len(people)) as pool:
        futures = [pool.submit(enrol, item) for item in people.items()]
        end = time.monotonic() + 120
        while not done and time.monotonic() < end:  # kill once the first enrolment is answered
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)
        for f in futures:
            f.result()
    assert server.proc.wait(30) == -signal.SIGKILL
    assert done and all(status == 201 for _, status in done)
    gallery = Gallery.open(tmp_path / "galleries" / "kill")
    counts = {i.name: i.embeddings for i in gallery.identities()}
    gallery.close()
    assert set(counts.values()) == {4}  # whole enrolments only
    assert {name for name, _ in done} <= set(counts)


def test_without_a_key_a_non_loopback_host_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "facelivt", "serve", "--host", "0.0.0.0", "--port", "0",
                           "--weights", str(WEIGHTS), "--keys", str(tmp_path / "none.sqlite"), "--json"],
                          capture_output=True, text=True, timeout=300, env=server_env(), cwd=tmp_path)
    assert proc.returncode == 2
    assert "refusing to listen on 0.0.0.0" in proc.stderr and "API key" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_without_a_key_the_log_says_this_machine_only(server):
    assert "open to this machine only" in server.log()


def test_two_worker_processes_share_one_gallery(tmp_path, single_face_photos):
    server = start_server(tmp_path, "--workers", "2")
    name, photos = sorted(single_face_photos.items())[0]
    with server.client() as c:
        r = c.post("/v1/galleries/shared/identities", data={"name": name}, files=[upload(photos[0], "images")])
        assert r.status_code == 201
    for _ in range(6):  # new connections: the requests land on either worker
        with server.client() as c:
            listed = c.get("/v1/galleries/shared/identities").json()["identities"]
            assert [(i["name"], i["embeddings"]) for i in listed] == [(name, 1)]
    assert server.stop() == 0, server.log()[-3000:]
