"""Entry script of the frozen app (PyInstaller): the same main() as the `rnnviewer` command."""

import sys

from rnnviewer.app import main

if __name__ == "__main__":
    sys.exit(main())
