"""``python -m gpuwatchd`` runs the daemon, like the ``gpuwatchd`` console script."""

import sys

from gpuwatchd.daemon.cli import main

sys.exit(main())
