"""``python -m clip_core`` runs the ``clip`` command line."""

from clip_core.cli import main

raise SystemExit(main())
