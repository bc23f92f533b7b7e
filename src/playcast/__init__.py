"""playcast: play games in the browser from a server, broadcast the play, chat in real time.

Self-hosted, AWS-shaped APIs (GameLift Streams, AppSync Events, IVS-style broadcast)."""

__version__ = "0.1.0"
