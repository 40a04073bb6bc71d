"""``python -m launcher``: what ``make up`` runs."""

import sys

from launcher import main

sys.exit(main())
