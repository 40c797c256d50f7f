import sys

from seqcpc.cli import main

sys.exit(main())
