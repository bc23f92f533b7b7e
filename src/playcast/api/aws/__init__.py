"""The GameLift Streams-compatible REST-JSON API (restJson1 + SigV4), driven by botocore's service model.

Routing, validation, auth and error shapes only; the work is done by playcast.control."""
