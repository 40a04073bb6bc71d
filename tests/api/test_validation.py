"""Bad requests get a clear JSON error with the right 4xx, never a 500, and nothing is queued."""

import io

import pytest


def files(*uploads, field="image"):
    return {field: [(io.BytesIO(data), name) for name, data in uploads]}


def assert_json_error(response, status, *words):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    message = response.get_json()["error"]
    for word in words:
        assert word in message
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_wrong_field_name_says_which_field_to_use(client, worker, digit_104):
    response = client.post("/recognize", data=files(("104.png", digit_104), field="file"))
    assert_json_error(response, 400, "'image'", "'file'")
    assert not worker.sent


def test_no_body_at_all(client):
    assert_json_error(client.post("/recognize", content_type="multipart/form-data; boundary=x", data=b""),
                      400, "no image")


def test_json_instead_of_multipart(client):
    assert_json_error(client.post("/recognize", json={"image": "aGVsbG8="}), 415, "multipart/form-data")


def test_broken_multipart(client):
    body = b"--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\nabc"
    response = client.post("/recognize", data=body, content_type="multipart/form-data; boundary=x")
    assert response.status_code in (400, 413)
    assert "error" in response.get_json()


def test_a_file_that_is_not_an_image_names_it(client, worker):
    response = client.post("/recognize", data=files(("notes.txt", b"hello, this is text")))
    assert_json_error(response, 400, "notes.txt", "not an image")
    assert response.get_json()["filename"] == "notes.txt"
    assert not worker.sent


def test_one_bad_image_refuses_the_request_before_anything_is_queued(client, worker, digit_104):
    response = client.post("/recognize", data=files(("ok.png", digit_104), ("bad.png", b"\x89PNG broken")))
    assert_json_error(response, 400, "image 1", "bad.png")
    assert not worker.sent
    assert worker.store.queued_images(["mnist"]) == {"mnist": {"interactive": 0, "bulk": 0}}


def test_too_many_images(make_app, serve, digit_104):
    serve()
    app, worker = make_app(max_images_per_request=3)
    response = app.test_client().post("/recognize", data=files(*[(f"{i}", digit_104) for i in range(4)]))
    assert_json_error(response, 413, "4 images", "3 allowed")
    assert not worker.sent


def test_thousands_of_parts(client, digit_104):
    response = client.post("/recognize", data=files(*[(f"{i}", digit_104) for i in range(3000)]))
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_a_request_over_the_byte_limit(make_app, serve):
    serve()
    app, worker = make_app(max_request_bytes=10_000)
    response = app.test_client().post("/recognize", data=files(("big.png", b"\0" * 20_000)))
    assert_json_error(response, 413, "more than the 10000 allowed")
    assert not worker.sent


def test_an_image_over_the_pixel_limit(make_app, serve, digit_104):
    serve()
    app, _ = make_app(max_image_pixels=100)
    assert_json_error(app.test_client().post("/recognize", data=files(("104.png", digit_104))), 413, "pixels")


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/recognize"), ("get", "/jobs"), ("delete", "/jobs"), ("put", "/recognize"), ("post", "/healthz"),
])
def test_wrong_methods_are_json_405(client, method, path):
    response = getattr(client, method)(path)
    assert_json_error(response, 405, "method not allowed")
    assert "Allow" in response.headers


def test_unknown_routes_are_json_404(client):
    assert_json_error(client.get("/nope"), 404, "no such route")


def test_a_part_without_a_field_name(client):
    """Found by schemathesis: a nameless part once made the 'no image' message a 500."""
    body = b'--x\r\nContent-Disposition: form-data; name=""\r\n\r\n{"a": 1}\r\n--x--\r\n'
    response = client.post("/recognize", data=body, content_type="multipart/form-data; boundary=x")
    assert_json_error(response, 400, "no image")


def test_an_image_field_sent_as_text_is_refused(client, worker):
    response = client.post("/recognize", data={"image": "not a file"}, content_type="multipart/form-data")
    assert_json_error(response, 400, "must be a file upload")
    assert not worker.sent
