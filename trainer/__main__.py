"""``python -m trainer``: see ``trainer.cli``."""

import os
import sys

# TensorFlow's C++ start-up notices (CPU instructions, oneDNN) would bury the progress bar; a value set
# by the caller wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from trainer.cli import main  # noqa: E402  (the variable must be set before TensorFlow is imported)

sys.exit(main())
