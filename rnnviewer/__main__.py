"""python -m rnnviewer"""

import sys

from rnnviewer.app import main

if __name__ == "__main__":
    sys.exit(main())
