"""`python -m codeweir.cli`: the same commands as the `codeweir` script."""

import sys

from codeweir.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
