"""``python -m repository``: the command line."""

import sys

from repository.cli import main

sys.exit(main())
