import sys

from continuum.services.guardrails.main import main

sys.exit(main())
