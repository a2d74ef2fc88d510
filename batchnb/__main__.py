"""``python -m batchnb`` is the ``batchnb`` command."""

import sys

from .cli import main

sys.exit(main())
