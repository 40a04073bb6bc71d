"""The reference: the seed's Go server ported as is, to measure inferq against.

Flask holds the SavedModel and makes one session call per request (no queue, no batching),
served with 2 processes x 8 threads by the HTTP server inferq is measured under (gunicorn gthread,
or granian's WSGI interface: ``bench/systems.py``).
Like the seed it loads the newest version of one model's directory (MODEL_DIR, which
``bench.systems`` sets to the model measured; unset, the MNIST MLP's, ``<MODEL_REPOSITORY>/mnist``)
with tags ["model"], feeds the raw pixels of the upload to ``inputdata`` and answers
``{"filename": ..., "labels": [...]}`` from ``inference``.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from flask import Flask, jsonify, request
from PIL import Image

from bench.models import mnist_dir
from inferq.repository import newest_version, version_dir
from inferq.settings import Settings


def create_app(model_dir: str | None = None) -> Flask:
    model_dir = model_dir or str(mnist_dir(Settings.from_env()))
    version = newest_version(model_dir)
    if version is None:
        raise SystemExit(f"no model under {model_dir}")
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        tf.compat.v1.saved_model.loader.load(session, ["model"], str(version_dir(model_dir, version)))
    recognize_pixels = session.make_callable("inference:0", feed_list=["inputdata:0"])

    app = Flask(__name__)

    @app.post("/recognize")
    def recognize():
        upload = request.files.get("image")
        if upload is None:
            return jsonify({"error": "Could not read image"}), 400
        try:
            pixels = np.asarray(Image.open(io.BytesIO(upload.read())), dtype=np.float32).reshape(1, -1)
            labels = recognize_pixels(pixels)
        except Exception:
            return jsonify({"error": "Invalid image"}), 400
        return jsonify({"filename": upload.filename, "labels": labels.tolist()})

    return app
