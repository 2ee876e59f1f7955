import sys

from continuum.services.workflow.main import main

sys.exit(main())
