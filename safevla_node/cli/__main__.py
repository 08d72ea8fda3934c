"""``python -m safevla_node.cli`` runs the ``safevla`` command."""

from safevla_node.cli import main

raise SystemExit(main())
