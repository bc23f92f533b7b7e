"""The host protocol: the versioned messages between the control plane and the hosts that run stream sessions, and
the channels that carry them (in memory for the embedded host, a WebSocket for hosts on other machines).

Both control/ and host/ import this package; it imports neither of them."""
