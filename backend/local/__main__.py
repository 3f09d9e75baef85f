import sys

from backend.local.supervisor import main

sys.exit(main())
