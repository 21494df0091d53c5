"""``python3 -m bench``: run the benchmarks and print the table (see ``bench.cli``)."""

import sys

from bench.cli import main

sys.exit(main())
