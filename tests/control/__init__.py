"""Control-plane tests (database + state machine + ingest, with real subprocess hosts)."""
