"""Events tests: the AppSync Events-compatible service with real WebSocket clients, Redis and processes."""
