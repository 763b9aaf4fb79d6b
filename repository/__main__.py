"""``python -m repository``: the command line."""

import sys

from repository.cli import main

if __name__ == "__main__":
    sys.exit(main())
