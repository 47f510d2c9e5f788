import sys

from posevae.cli.main import main

sys.exit(main())
