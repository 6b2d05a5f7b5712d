import sys

from irec_jax.cli import main

sys.exit(main())
