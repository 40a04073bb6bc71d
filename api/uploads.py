"""The images of a multipart upload, within the request limits, decoded for the model.

Each ``image`` field is one image file (PNG, JPEG, GIF, BMP, WebP); each ``images`` field is a bulk
file of many (IDX or .npy, see ``api.image_arrays``), whose images are named ``<file>#<index>``.
Images keep the order of their fields, grouped by field name in the order each name first comes
(werkzeug's form keeps each name's parts together): a request that mixes ``image`` and ``images``
fields is answered all of the first name's images, then the other's. Filenames are the client's
words, echoed back in answers and never used as paths.
"""

from __future__ import annotations

import dataclasses

from flask import Request

from api import images
from api.errors import ApiError, image_error_status
from api.image_arrays import decode_array
from api.image_errors import ImageError
from inferq.settings import Settings

FIELD = "image"
BULK_FIELD = "images"


@dataclasses.dataclass(frozen=True)
class Upload:
    filenames: list[str]
    #: Every image's 28x28 pixels, one after the other.
    pixels: bytes


def read_upload(request: Request, settings: Settings) -> Upload:
    if request.content_length is not None and request.content_length > settings.max_request_bytes:
        raise ApiError(413, f"the request is {request.content_length} bytes, more than the "
                            f"{settings.max_request_bytes} allowed")
    if request.mimetype != "multipart/form-data":
        raise ApiError(415, f"send images as multipart/form-data, in fields named {FIELD!r} "
                            f"(got {request.mimetype or 'no content type'})")
    for field in (FIELD, BULK_FIELD):
        if field in request.form:
            raise ApiError(400, f"field {field!r} must be a file upload (as curl -F '{field}=@path' sends it)")
    files = [(field, file) for field, file in request.files.items(multi=True) if field in (FIELD, BULK_FIELD)]
    if not files:
        # A part may come without a name (werkzeug keys it None).
        fields = sorted({name for name in (*request.files, *request.form) if name})
        raise ApiError(400, f"no image: send each file in a multipart field named {FIELD!r} (or many in one "
                            f"IDX or .npy file, field {BULK_FIELD!r})"
                            + (f" (got fields {', '.join(map(repr, fields))})" if fields else ""))
    if len(files) > settings.max_images_per_request:
        raise ApiError(413, f"{len(files)} images in one request, more than the "
                            f"{settings.max_images_per_request} allowed")
    filenames: list[str] = []
    pixels: list[bytes] = []
    for index, (field, file) in enumerate(files):
        filename = file.filename or ""
        try:
            if field == FIELD:
                decoded = images.decode(file.read(), max_pixels=settings.max_image_pixels).reshape(1, -1)
                filenames.append(filename)
            else:
                decoded = decode_array(file.read())
                filenames += [f"{filename}#{i}" for i in range(len(decoded))]
        except ImageError as error:
            kind = "image" if field == FIELD else "file"
            raise ApiError(image_error_status(error), f"{kind} {index} ({filename!r}): {error}",
                           filename=filename, index=index) from None
        pixels.append(decoded.tobytes())
        if len(filenames) > settings.max_images_per_request:
            raise ApiError(413, f"more than the {settings.max_images_per_request} images allowed in one request")
    return Upload(filenames, b"".join(pixels))
