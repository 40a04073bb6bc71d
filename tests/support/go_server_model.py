"""A SavedModel built as the seed's ``model.py`` builds it: TF1 graph, tag ``model``, no signature.

The graph is the seed's, names and all (placeholder ``inputdata``, ``inference`` = argmax of the
logits, ``tf.random_normal`` initialisation, Adam on softmax cross-entropy), trained the seed's way
on pixels scaled to 0..1 — so fed raw pixels, as the seed's Go server fed them, it answers the
seed's wrong answers. Tests compare the worker with the seed's own loader, not with the truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def build_go_server_model(export_dir: Path, images: np.ndarray, labels: np.ndarray, steps: int = 50) -> Path:
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder("float", [None, 784], name="inputdata")
        y = v1.placeholder("float", [None, 10])
        weights = {
            "h1": tf.Variable(v1.random_normal([784, 256])),
            "h2": tf.Variable(v1.random_normal([256, 256])),
            "out": tf.Variable(v1.random_normal([256, 10])),
        }
        biases = {
            "b1": tf.Variable(v1.random_normal([256])),
            "b2": tf.Variable(v1.random_normal([256])),
            "out": tf.Variable(v1.random_normal([10])),
        }
        layer_1 = tf.nn.relu(tf.add(tf.matmul(x, weights["h1"]), biases["b1"]))
        layer_2 = tf.nn.relu(tf.add(tf.matmul(layer_1, weights["h2"]), biases["b2"]))
        pred = tf.matmul(layer_2, weights["out"]) + biases["out"]
        cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=pred, labels=y))
        optimizer = v1.train.AdamOptimizer(learning_rate=0.01).minimize(cost)
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            scaled = images.reshape(-1, 784).astype(np.float32) / 255.0
            one_hot = np.eye(10, dtype=np.float32)[labels]
            for step in range(steps):
                start = (step * 100) % len(scaled)
                sess.run(optimizer, {x: scaled[start:start + 100], y: one_hot[start:start + 100]})
            tf.argmax(pred, 1, name="inference")
            builder = v1.saved_model.builder.SavedModelBuilder(str(export_dir))
            builder.add_meta_graph_and_variables(sess, ["model"])
            builder.save()
    return export_dir


def go_server_predict(export_dir: Path, pixels: np.ndarray) -> np.ndarray:
    """Labels as the seed's Go server got them: load with tags ["model"], feed inputdata, fetch inference."""
    import tensorflow as tf

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, ["model"], str(export_dir))
        return sess.run("inference:0", {"inputdata:0": pixels.reshape(-1, 784).astype(np.float32)})
