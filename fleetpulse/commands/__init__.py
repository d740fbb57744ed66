"""One module per `fleetpulse` subcommand."""
