"""Operator tooling for fleetpulse: the `fleetpulse` command and the local stack."""
