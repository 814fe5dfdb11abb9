from tollgate.local.soak.cli import main

raise SystemExit(main())
