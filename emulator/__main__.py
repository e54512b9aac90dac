"""`python -m emulator ...`."""

import sys

from emulator.cli import main

sys.exit(main())
