"""HTTP routes only: parse, authorize, call control/, shape responses. Never touches media."""
