"""`python -m sqlmpc.runtime.agent NAME --catalog C.toml ...`: the same as `sqlmpc agent ...`."""

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["agent", *sys.argv[1:]]))
