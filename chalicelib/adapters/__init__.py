"""One module per outside system. Each adapter takes an injected client."""
