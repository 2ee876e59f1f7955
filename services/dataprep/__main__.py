import sys

from continuum.services.dataprep.main import main

sys.exit(main())
