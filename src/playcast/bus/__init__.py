"""Pub/sub bus: in-process and Redis implementations."""
