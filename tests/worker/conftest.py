"""Worker tests' fixtures: a fake model loader (``tests.worker.fake_loading``)."""

from tests.worker.fake_loading import loader  # noqa: F401  (a fixture, found here by pytest)
