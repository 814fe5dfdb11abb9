"""``python -m tollgate``: the same as the ``tollgate`` console script."""

from tollgate.cli import main

raise SystemExit(main())
