"""`python -m sqlmpc ...`: the same as the `sqlmpc` command."""

import sys

from .runtime.cli import main

if __name__ == "__main__":
    sys.exit(main())
