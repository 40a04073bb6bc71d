"""The trainer job: trains the seed's MNIST MLP and publishes it as the next SavedModel version.

``python -m trainer --params config/model.json`` runs it; ``trainer.params.load_params`` and
``trainer.train.train_and_export`` are the Python API. Importing this package, ``trainer.params``,
``trainer.data`` or ``trainer.cli`` does not import TensorFlow: parameters and data are checked
before the slow import, so a mistake is reported in about a second.
"""
