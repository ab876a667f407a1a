import sys

from musicsep.cli import main

sys.exit(main())
