import sys

from recloop.cli.main import main

sys.exit(main())
