import sys

from inferq.client.cli import main

sys.exit(main())
