"""Everything the collector and the scheduled Lambdas ship with."""
