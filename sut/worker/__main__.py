import sys

from sut.worker.server import main

sys.exit(main())
