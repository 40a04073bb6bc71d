"""What is wrong with an uploaded image or bulk file, in words for a person.

The decoders raise these; ``api.errors`` gives each its HTTP status.
"""


class ImageError(ValueError):
    """Not an image, or not one that can be read: empty, corrupt, truncated, the wrong shape."""


class TooManyPixels(ImageError):
    """More pixels than a limit allows (413): an image past the pixel limit (a decompression bomb, or
    simply too big), a request's images past its budget, a bulk file of more images than a request takes."""


class UnsupportedImageType(ImageError):
    """An image of a format that is not taken."""


def image_error_status(error: ImageError) -> int:
    if isinstance(error, TooManyPixels):
        return 413
    if isinstance(error, UnsupportedImageType):
        return 415
    return 400
