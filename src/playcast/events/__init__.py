"""Real-time events: the AppSync Events protocol, channels, auth, history, moderation; chat on top."""
