import sys

from toonmatte.cli import main

sys.exit(main())
