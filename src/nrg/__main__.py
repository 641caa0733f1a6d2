"""``python -m nrg`` runs the command line (same as the ``nrg`` script)."""
from __future__ import annotations

import sys

from nrg.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
