"""What a model call fails with, and which of it a client may be told. No TensorFlow here: the
batch path (``worker.inference``) tells them apart without loading it."""

from __future__ import annotations


class ModelCallError(RuntimeError):
    """The model refused a batch; the message is TensorFlow's, without its graph dump."""


class InputMismatch(ModelCallError):
    """The inputs do not fit the model's signature (names, types, shapes): what the client sent, said
    in the signature's own terms, so its message may go back to the client as it is."""
