"""The images of a multipart upload, within the request limits, decoded for the model.

Filenames are the client's words, echoed back in answers and never used as paths.
"""

from __future__ import annotations

import dataclasses

from flask import Request

from api import images
from api.errors import ApiError
from inferq.settings import Settings

FIELD = "image"


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
    files = request.files.getlist(FIELD)
    if not files:
        # A part may come without a name (werkzeug keys it None).
        fields = sorted({name for name in (*request.files, *request.form) if name})
        raise ApiError(400, f"no image: send each file in a multipart field named {FIELD!r}"
                            + (f" (got fields {', '.join(map(repr, fields))})" if fields else ""))
    if len(files) > settings.max_images_per_request:
        raise ApiError(413, f"{len(files)} images in one request, more than the "
                            f"{settings.max_images_per_request} allowed")
    filenames, pixels = [], []
    for index, file in enumerate(files):
        filename = file.filename or ""
        try:
            pixels.append(images.decode(file.read(), max_pixels=settings.max_image_pixels).tobytes())
        except ApiError as error:
            raise ApiError(error.status, f"image {index} ({filename!r}): {error.message}",
                           filename=filename, index=index) from None
        filenames.append(filename)
    return Upload(filenames, b"".join(pixels))
