"""The images of a multipart upload, within the request limits, decoded for the model they are for.

Each model that takes images says how through its input's shape and its config
(``api.images.inputs``): the images become that input's tensor here, so that what is queued is
what the model takes.

Each ``image`` field is one image file (PNG, JPEG, GIF, BMP, WebP); each ``images`` field is a bulk
file of many (IDX or .npy, see ``api.images.arrays``), whose images are named ``<file>#<index>``.
Images keep the order of their fields, grouped by field name in the order each name first comes
(werkzeug's form keeps each name's parts together): a request that mixes ``image`` and ``images``
fields is answered all of the first name's images, then the other's. Filenames are the client's
words, echoed back in answers and never used as paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TypeVar

import numpy as np
from flask import Request

from api.errors import ApiError
from api.images import offload
from api.images.arrays import decode_array
from api.images.decoding import open_image
from api.images.errors import ImageError, image_error_status
from api.images.inputs import ImageInput, ImageInputError, image_input, to_model_values
from api.images.preprocessing import decode_for
from api.queue.model_lookup import Served
from inferq.settings import Settings

FIELD = "image"
BULK_FIELD = "images"
#: Pixels of images decoded in one go off the event loop (``api.images.offload``): enough that a thousand
#: small images cost a handful of hand-offs, few enough that another request waits on one chunk
#: at most (a single image at the pixel limit is a chunk of its own).
CHUNK_PIXELS = 1 << 20
#: Pixels of images decoded on the request's own greenlet, not handed to a native thread: for a
#: chunk this small the hand-off and the wake-up back cost more than the decode (an MNIST digit:
#: about 30 µs decoded in place against 70 µs handed off, docs/benchmarks.md), and the hub is held
#: for no longer than a Redis round trip.
INLINE_PIXELS = 1 << 16

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Upload:
    filenames: list[str]
    #: The model's input, by name: every image, as the model takes it.
    inputs: dict[str, np.ndarray]


def image_input_of(served: Served) -> ImageInput:
    """How ``served`` takes images, or a 400 saying it does not."""
    try:
        found = image_input(served.spec)
    except ImageInputError as exc:
        raise ApiError(400, f"model {served.name!r}: {exc}") from None
    if found is None:
        raise ApiError(400, f"model {served.name!r} does not take images (its inputs: "
                            + ", ".join(f"{tensor.name} {tensor.dtype} {list(tensor.shape)}"
                                        for tensor in served.spec.inputs)
                            + "); send tensors through /v1/models/... (TF Serving) or /v2/models/... (KServe)")
    return found


def read_upload(request: Request, settings: Settings, served: Served) -> Upload:
    geometry = image_input_of(served)  # a model that takes no images says so, whatever was sent
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
    # A thousand parts' headers, read here on the request's greenlet, are many turns' worth of work.
    turns = offload.Turns()
    parts = [_Part(index, field, file.filename or "", file.read()) for index, (field, file) in enumerate(files)]
    filenames: list[str] = []
    pixels: dict[int, np.ndarray] = {}
    images: list[tuple[_Part, int]] = []
    request_pixels = 0
    # Every file's header first, every image's pixels after: what the request costs to decode is
    # known, and refused past MAX_REQUEST_PIXELS, before any of it is decoded.
    for part in parts:
        turns()
        if part.field == FIELD:
            width, height = _checked(part, _size, part.data, settings.max_image_pixels)
            request_pixels += width * height
            if request_pixels > settings.max_request_pixels:
                raise ApiError(413, f"image {part.index} ({part.filename!r}) brings the request's images to "
                                    f"{request_pixels} pixels, more than the {settings.max_request_pixels} allowed "
                                    "in one request (MAX_REQUEST_PIXELS); send them in several requests",
                               filename=part.filename, index=part.index)
            images.append((part, width * height))
            filenames.append(part.filename)
        else:
            pixels[part.index] = _checked(part, decode_array, part.data, geometry,
                                          settings.max_images_per_request)
            filenames += [f"{part.filename}#{i}" for i in range(len(pixels[part.index]))]
        if len(filenames) > settings.max_images_per_request:
            raise ApiError(413, f"more than the {settings.max_images_per_request} images allowed in one request")
    for chunk, chunk_pixels in _chunks(images):
        limit = settings.max_image_pixels
        decoded_chunk = (_decode_chunk(chunk, geometry, limit, turns) if chunk_pixels <= INLINE_PIXELS
                         else offload.run(_decode_chunk, chunk, geometry, limit))
        for part, decoded in zip(chunk, decoded_chunk, strict=True):
            pixels[part.index] = _checked(part, _raised, decoded)
    ordered = [pixels[part.index] for part in parts]
    stacked = ordered[0] if len(ordered) == 1 else np.concatenate(ordered)
    try:
        values = to_model_values(stacked, geometry)
    except ImageInputError as exc:
        raise ApiError(400, f"model {served.name!r}: {exc}") from None
    return Upload(filenames, {geometry.tensor.name: values})


@dataclasses.dataclass(frozen=True)
class _Part:
    index: int
    field: str
    filename: str
    data: bytes


def _checked(part: _Part, step: Callable[..., T], *args: object) -> T:
    """``step(*args)``, its :class:`ImageError` the request's error, naming the file."""
    try:
        return step(*args)
    except ImageError as error:
        kind = "image" if part.field == FIELD else "file"
        raise ApiError(image_error_status(error), f"{kind} {part.index} ({part.filename!r}): {error}",
                       filename=part.filename, index=part.index) from None


def _chunks(images: list[tuple[_Part, int]]) -> Iterator[tuple[list[_Part], int]]:
    """The images in order, in runs of about :data:`CHUNK_PIXELS`, each with its pixels."""
    chunk: list[_Part] = []
    size = 0
    for part, image_pixels in images:
        if chunk and size + image_pixels > CHUNK_PIXELS:
            yield chunk, size
            chunk, size = [], 0
        chunk.append(part)
        size += image_pixels
    if chunk:
        yield chunk, size


def _decode_chunk(chunk: list[_Part], geometry: ImageInput, max_pixels: int,
                  turns: Callable[[], None] = lambda: None) -> list[np.ndarray | ImageError]:
    """Each image's pixels ``[1, H, W, C]``, or the error that says why it has none; ``turns``
    between images where it runs on the request's greenlet."""
    decoded: list[np.ndarray | ImageError] = []
    for part in chunk:
        turns()
        try:
            decoded.append(decode_for(part.data, geometry, max_pixels=max_pixels)[np.newaxis])
        except ImageError as error:
            decoded.append(error)
    return decoded


def _size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """An image's width and height, from its header: nothing decoded."""
    return open_image(data, max_pixels).size


def _raised(decoded: np.ndarray | ImageError) -> np.ndarray:
    if isinstance(decoded, ImageError):
        raise decoded
    return decoded
