"""Control plane: session state machine, placement, capacity, timeouts. No HTTP, no media."""
