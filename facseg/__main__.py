"""`python -m facseg COMMAND ARGS`: the `facseg` command (facseg.cli)."""

import sys

from facseg.cli import main

sys.exit(main())
