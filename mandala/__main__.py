"""``python -m mandala``: the command-line tools (see ``mandala.cli.main``)."""

import sys

from mandala.cli.main import main

sys.exit(main())
