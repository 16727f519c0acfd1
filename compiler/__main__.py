import sys

from kcc.cli import main

sys.exit(main())
