"""``python -m kcc.coreml``: run a .mlmodel with the kcc numpy runtime (see cli.py)."""
from __future__ import annotations

import sys

from kcc.coreml.cli import main

sys.exit(main())
