import sys

from mraa.cli import main

sys.exit(main())
