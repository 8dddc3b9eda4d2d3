"""`python -m deploy` (what `make deploy` runs)."""

import sys

from deploy.command import main

sys.exit(main())
