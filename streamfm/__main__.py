"""``python -m streamfm``: the command line."""
from streamfm.cli import main

raise SystemExit(main())
