"""Host: the agent that talks to the server and runs stream sessions (display, app, audio, input)."""
