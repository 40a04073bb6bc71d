"""The images of a multipart upload, within the request limits, decoded for the model they are for.

Each model that takes images says how through its input's shape and its config
(``inferq.image_inputs``): the images become that input's tensor here, so that what is queued is
what the model takes.

Each ``image`` field is one image file (PNG, JPEG, GIF, BMP, WebP); each ``images`` field is a bulk
file of many (IDX or .npy, see ``api.image_arrays``), whose images are named ``<file>#<index>``.
Images keep the order of their fields, grouped by field name in the order each name first comes
(werkzeug's form keeps each name's parts together): a request that mixes ``image`` and ``images``
fields is answered all of the first name's images, then the other's. Filenames are the client's
words, echoed back in answers and never used as paths.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from flask import Request

from api.errors import ApiError, image_error_status
from api.image_arrays import decode_array
from api.image_errors import ImageError
from api.image_preprocessing import decode_for
from api.served_models import Served
from inferq.image_inputs import ImageInput, ImageInputError, image_input, to_model_values
from inferq.settings import Settings

FIELD = "image"
BULK_FIELD = "images"


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
    filenames: list[str] = []
    pixels: list[np.ndarray] = []
    for index, (field, file) in enumerate(files):
        filename = file.filename or ""
        try:
            if field == FIELD:
                decoded = decode_for(file.read(), geometry, max_pixels=settings.max_image_pixels)[np.newaxis]
                filenames.append(filename)
            else:
                decoded = decode_array(file.read(), geometry)
                filenames += [f"{filename}#{i}" for i in range(len(decoded))]
        except ImageError as error:
            kind = "image" if field == FIELD else "file"
            raise ApiError(image_error_status(error), f"{kind} {index} ({filename!r}): {error}",
                           filename=filename, index=index) from None
        pixels.append(decoded)
        if len(filenames) > settings.max_images_per_request:
            raise ApiError(413, f"more than the {settings.max_images_per_request} images allowed in one request")
    stacked = pixels[0] if len(pixels) == 1 else np.concatenate(pixels)
    try:
        values = to_model_values(stacked, geometry)
    except ImageInputError as exc:
        raise ApiError(400, f"model {served.name!r}: {exc}") from None
    return Upload(filenames, {geometry.tensor.name: values})
