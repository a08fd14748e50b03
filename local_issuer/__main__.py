"""``python -m local_issuer``: the same as the ``local-issuer`` command."""

import sys

from .cli import main

sys.exit(main())
