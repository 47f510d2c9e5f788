import sys

from posevae.cli import main

sys.exit(main())
