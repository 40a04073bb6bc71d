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


def npy_declaring(shape, data: bytes = b"") -> bytes:
    """A .npy file whose header declares ``shape`` of uint8, followed by ``data``."""
    import numpy as np

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buffer.getvalue() + data


def idx_declaring(count: int, data: bytes = b"") -> bytes:
    import struct

    return struct.pack(">IIII", 0x00000803, count, 28, 28) + data


@pytest.mark.parametrize("path", ["/recognize", "/jobs", "/models/mnist/recognize", "/models/mnist/jobs"])
@pytest.mark.parametrize(("name", "content"), [
    ("empty.npy", npy_declaring((0, 28, 28))),
    ("flat.npy", npy_declaring((0, 784))),
    ("empty.idx", idx_declaring(0)),
])
def test_a_bulk_file_of_no_images_is_a_400_and_nothing_is_queued(client, worker, path, name, content):
    """Queued, a job of no images was a message the worker refused whole, with the jobs it shared it with."""
    response = client.post(path, data=files((name, content), field="images"))
    assert_json_error(response, 400, name, "holds no images")
    assert not worker.sent
    assert worker.store.queued_images(["mnist"]) == {"mnist": {"interactive": 0, "bulk": 0}}


@pytest.mark.parametrize(("content", "status", "words"), [
    (npy_declaring((2**40, 28, 28)), 413, ["declares 1099511627776 images, more than the 1024 allowed"]),
    (npy_declaring((2**40, 784)), 413, ["declares 1099511627776 images"]),
    (idx_declaring(2**32 - 1), 413, ["declares 4294967295 images, more than the 1024 allowed"]),
    (npy_declaring((5, 28, 28), bytes(784)), 400, ["declares 5x28x28 uint8 pixels (3920 bytes), but 784 bytes follow"]),
    (npy_declaring((1, 28, 28), bytes(785)), 400, ["784 bytes", "but 785 bytes follow"]),
])
def test_a_bulk_files_declared_shape_is_checked_before_anything_is_allocated(client, worker, content, status, words):
    """np.load allocates what the header declares before it reads: 2^40 images were a MemoryError, a 500."""
    response = client.post("/jobs", data=files(("declared.npy", content), field="images"))
    assert_json_error(response, status, "file 0 ('declared.npy')", *words)
    assert not worker.sent


def test_a_fortran_ordered_npy_reads_as_numpy_would(client, worker, mnist_test):
    import numpy as np

    images = np.asfortranarray(mnist_test[0][:3])
    buffer = io.BytesIO()
    np.save(buffer, images)
    response = client.post("/jobs", data=files(("f.npy", buffer.getvalue()), field="images"))
    assert response.status_code == 202
    np.testing.assert_array_equal(worker.sent[0].inputs["inputdata"].reshape(3, 28, 28), mnist_test[0][:3])


def test_a_requests_image_pixels_past_its_budget_are_a_413_before_any_is_decoded(make_app, serve, digit_104,
                                                                                 monkeypatch):
    import api.images.uploads

    decoded = []
    real = api.images.uploads.decode_for
    monkeypatch.setattr(api.images.uploads, "decode_for",
                        lambda *args, **kwargs: decoded.append(1) or real(*args, **kwargs))
    serve()
    app, worker = make_app(max_request_pixels=2 * 28 * 28)
    response = app.test_client().post("/recognize", data=files(*[(f"{i}.png", digit_104) for i in range(3)]))
    assert_json_error(response, 413, "image 2 ('2.png') brings the request's images to 2352 pixels, more than the "
                                     "1568 allowed in one request (MAX_REQUEST_PIXELS)")
    assert response.get_json()["index"] == 2
    assert decoded == [] and not worker.sent
    assert app.test_client().post("/recognize", data=files(*[(f"{i}.png", digit_104) for i in range(2)])).status_code \
        == 200
    assert len(decoded) == 2


def test_bulk_files_are_not_decoded_and_not_counted_in_the_pixel_budget(make_app, serve, mnist_test):
    from tests.api.test_image_routes import npy_file

    serve()
    app, _ = make_app(max_request_pixels=1)
    response = app.test_client().post("/jobs", data=files(("all.npy", npy_file(mnist_test[0][:1024])), field="images"))
    assert response.status_code == 202 and response.get_json()["images"] == 1024


def test_the_default_budget_refuses_a_fifth_image_at_the_pixel_limit(client, worker):
    """A 4096x4096 PNG of one colour is 16 KB: the byte limit lets a thousand of them through."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (4096, 4096)).save(buffer, "PNG")
    response = client.post("/jobs", data=files(*[(f"{i}.png", buffer.getvalue()) for i in range(968)]))
    assert_json_error(response, 413, "image 4 ('4.png')", "MAX_REQUEST_PIXELS")
    assert not worker.sent
