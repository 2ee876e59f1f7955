from continuum.services.agent.main import main

raise SystemExit(main())
