"""Chat, reactions, presence, metadata and moderation for stream sessions, built on the events core (namespace `chat`).

Import ChatService from .service; this package never touches sockets or the bus directly."""
