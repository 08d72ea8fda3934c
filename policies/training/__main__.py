"""``python -m policies.training``: see ``policies.training.launch``."""

import sys

from policies.training.launch import main

sys.exit(main())
