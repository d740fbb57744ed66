"""fleetpulse agent: samples the host, spools every batch to disk, posts it to the collector.

Standard library only, Python 3.8+, Linux. Runs from the source tree
(`python3 -m fleetpulse_agent`) or as a single-file zipapp.
"""

__version__ = "0.1.0"
AGENT_NAME = "fleetpulse-agent"
