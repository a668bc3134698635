"""``python -m captum_leg.cli``: the ``captum-leg`` command."""

import sys

from captum_leg.cli import main

sys.exit(main())
