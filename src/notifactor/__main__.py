"""``python -m notifactor`` is the console script."""

import sys

from notifactor.cli import main

sys.exit(main())
