import sys

from fleetpulse_agent.cli import main

sys.exit(main())
