import sys

from continuum.services.vectordb.main import main

sys.exit(main())
