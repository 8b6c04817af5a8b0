"""``python -m memcheck``: the same command line as ``memcheck``."""

from memcheck.cli.main import main

raise SystemExit(main())
