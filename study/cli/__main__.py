"""`python -m study.cli`: the `lamp-study` command."""

import sys

from study.cli import main

sys.exit(main())
