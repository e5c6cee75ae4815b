"""Bad inputs and limits: each gets a JSON 4xx (or 504) with a stable code, never a traceback, and the
server stays up. The server here has small limits: 1 MiB bodies, 2 faces per photo, 2 MP images, 3 s
per request, and CORS for one origin."""
from __future__ import annotations

import io
import socket

import pytest
from PIL import Image

from serve_helpers import start_server, upload
from image_helpers import huge_png

ORIGIN = "http://page.test"


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("limits"), "--max-upload-mb", "1", "--max-faces", "2",
                     "--max-pixels", "2000000", "--request-timeout", "3", "--cors-origin", ORIGIN)
    yield s
    assert s.stop() == 0, s.log()[-3000:]


@pytest.fixture(scope="module")
def client(limited):
    with limited.client() as c:
        yield c


@pytest.fixture(autouse=True)
def _still_up_after(limited):
    yield
    assert limited.proc.poll() is None
    assert "Traceback" not in limited.log()


def _error(r, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert "Traceback" not in err["message"]
    return err["message"]


def test_not_an_image_empty_and_truncated_files_are_invalid_images(client, single_face_photos, tmp_path):
    photo = next(iter(single_face_photos.values()))[0]
    data = photo.read_bytes()
    for name, content in (("notes.txt", b"just some text, not a photo"), ("empty.jpg", b""),
                          ("cut.jpg", data[: len(data) // 2])):
        msg = _error(client.post("/v1/detect", files=[("image", (name, content, "image/jpeg"))]), 400, "invalid_image")
        assert name in msg


def test_a_50000_by_50000_png_is_refused_by_its_header(client, tmp_path):
    png = huge_png(tmp_path / "huge.png", 50_000, 50_000)
    assert png.stat().st_size < 1024 * 1024  # under the body limit: the pixel limit refuses it
    _error(client.post("/v1/detect", files=[upload(png)]), 413, "image_too_large")


def test_an_image_above_the_pixel_limit_is_refused(client):
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1001)).save(buffer, "PNG")
    r = client.post("/v1/embed", files=[("images", ("big.png", buffer.getvalue(), "image/png"))])
    _error(r, 413, "image_too_large")


def test_a_body_above_the_upload_limit_is_refused(client):
    big = bytes(1024 * 1024 + 1)
    _error(client.post("/v1/detect", files=[("image", ("big.jpg", big, "image/jpeg"))]), 413, "payload_too_large")


def test_a_streamed_body_without_length_is_cut_at_the_limit(client):
    def chunks():
        yield b'--xyz\r\ncontent-disposition: form-data; name="image"; filename="a.jpg"\r\ncontent-type: image/jpeg\r\n\r\n'
        for _ in range(40):  # 2.5 MiB of a file part
            yield bytes(64 * 1024)
    r = client.post("/v1/detect", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"})
    _error(r, 413, "payload_too_large")


def test_a_malformed_multipart_body_is_a_bad_request(client):
    r = client.post("/v1/detect", content=b"--xyz\r\nnot a part header\r\n\r\nzzz",
                    headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert r.status_code in (400, 422)
    assert r.json()["error"]["code"] in ("bad_request", "validation_error")


def test_missing_fields_and_bad_values_are_validation_errors(client, single_face_photos):
    photo = next(iter(single_face_photos.values()))[0]
    _error(client.post("/v1/verify", files=[upload(photo, "image1")]), 422, "validation_error")
    _error(client.post("/v1/embed", files=[upload(photo, "images")], data={"face": "some"}), 422, "validation_error")
    client.post("/v1/galleries/val/identities", data={"name": "x"}, files=[upload(photo, "images")])
    _error(client.post("/v1/galleries/val/identify", files=[upload(photo)], data={"k": "0"}), 422, "validation_error")
    _error(client.patch("/v1/galleries/val/identities/x", content=b"{not json", headers={"content-type": "application/json"}),
           422, "validation_error")


def test_unknown_routes_and_methods_are_json_errors(client):
    _error(client.get("/v2/anything"), 404, "not_found")
    _error(client.delete("/v1/health"), 405, "method_not_allowed")


def test_too_many_faces_in_a_photo(client, multi_face_photo):
    msg = _error(client.post("/v1/detect", files=[upload(multi_face_photo)]), 422, "too_many_faces")
    assert multi_face_photo.name in msg
    _error(client.post("/v1/embed", files=[upload(multi_face_photo, "images")]), 422, "too_many_faces")


def test_a_photo_without_a_face(client, no_face_photo, single_face_photos):
    assert client.post("/v1/detect", files=[upload(no_face_photo)]).json()["faces"] == []
    assert client.post("/v1/embed", files=[upload(no_face_photo, "images")]).json()["results"][0]["faces"] == []
    photo = next(iter(single_face_photos.values()))[0]
    msg = _error(client.post("/v1/verify", files=[upload(photo, "image1"), upload(no_face_photo, "image2")]),
                 422, "no_face")
    assert no_face_photo.name in msg


def test_enrolment_is_all_or_nothing(client, no_face_photo, single_face_photos):
    photos = next(iter(single_face_photos.values()))[:2]
    r = client.post("/v1/galleries/whole/identities", data={"name": "dee"},
                    files=[upload(photos[0], "images"), upload(no_face_photo, "images"), upload(photos[1], "images")])
    assert no_face_photo.name in _error(r, 422, "no_face")
    assert client.get("/v1/galleries/whole/identities/dee").status_code == 404


@pytest.mark.parametrize("gallery", ["..", ".hidden", "a..b", "-x", "x" * 65, "semi;colon", "sp ace", "%2e%2e"])
def test_gallery_names_that_could_be_paths_are_refused(client, gallery):
    r = client.get(f"/v1/galleries/{gallery}/identities")
    assert r.status_code in (400, 404), r.text  # "%2e%2e" may be routed away as "..": then there is no such route
    assert r.json()["error"]["code"] in ("invalid_name", "not_found")
    if gallery not in ("..", "%2e%2e"):
        _error(r, 400, "invalid_name")


@pytest.mark.parametrize("name", ["", "   ", "tab\there", "new\nline", "x" * 201])
def test_bad_identity_names_are_refused(client, single_face_photos, name):
    photo = next(iter(single_face_photos.values()))[0]
    r = client.post("/v1/galleries/names/identities", data={"name": name}, files=[upload(photo, "images")])
    assert r.status_code in (400, 422)
    assert r.json()["error"]["code"] in ("invalid_name", "validation_error")


def test_an_identity_name_of_200_characters_is_fine(client, single_face_photos):
    photo = next(iter(single_face_photos.values()))[0]
    r = client.post("/v1/galleries/names/identities", data={"name": "é" * 200}, files=[upload(photo, "images")])
    assert r.status_code == 201, r.text


def test_a_request_slower_than_the_limit_gets_504(limited):
    """A client that sends half its body and stalls: the request times out (3 s) with 504."""
    host, port = limited.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: multipart/form-data; boundary=xyz\r\n"
                  b"content-length: 1000\r\n\r\n--xyz\r\n")
        s.settimeout(30)
        answer = b""
        while b'"}}' not in answer:
            more = s.recv(4096)
            if not more:
                break
            answer += more
        answer = answer.decode()
    assert answer.startswith("HTTP/1.1 504"), answer
    assert '"code":"timeout"' in answer.replace(" ", "")


def test_cors_allows_the_configured_origin_only(client):
    pre = {"access-control-request-method": "POST"}
    ok = client.options("/v1/verify", headers={"origin": ORIGIN, **pre})
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    other = client.options("/v1/verify", headers={"origin": "http://evil.test", **pre})
    assert other.headers.get("access-control-allow-origin") != "http://evil.test"


def test_the_server_still_answers_after_all_that(client):
    assert client.get("/v1/health").status_code == 200
