import sys

from serums.cli import main

sys.exit(main())
