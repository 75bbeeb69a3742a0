"""tests/ui: the Control UI. The shared helpers (``gateway_proc`` …) live one directory up."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
