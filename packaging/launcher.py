"""Entry script of the frozen app (PyInstaller): the same main() as the `rnnviewer` command.

freeze_support() first: the training process (training/process.py) is this executable
started again by multiprocessing, which freeze_support() turns into the child's main."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from rnnviewer.app import main
    sys.exit(main())
