"""Use-cases: they combine the pure core with the ports; no AWS SDK in here either."""
