"""``python -m emolens.cli``: the ``emolens`` command."""

import sys

from . import main

sys.exit(main())
