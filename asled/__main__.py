import sys

from asled.cli import main

sys.exit(main())
