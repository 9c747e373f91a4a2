import sys

from mmgcn.cli import main

sys.exit(main())
