import sys

from continuum.services.bridge.main import main

sys.exit(main())
