"""The pure domain: no AWS SDK, no web framework, no HTTP client; time comes in as an argument."""
