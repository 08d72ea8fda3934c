"""``python -m safevla_node.evaluation SUITE --out DIR``: the ``safevla eval`` command on its own."""

import sys

from safevla_node.cli.eval_command import main

sys.exit(main())
