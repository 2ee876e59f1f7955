from continuum.services.scheduler.main import main

raise SystemExit(main())
