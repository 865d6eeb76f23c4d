import sys

from lm2.cli import main

sys.exit(main())
