"""Contract tests: one per library whose internals inferq relies on, failing with what to re-check
when that library moves (kombu, celery-batches, TensorFlow)."""
