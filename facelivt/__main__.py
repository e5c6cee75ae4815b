import sys

from facelivt.cli import main

sys.exit(main())
