"""Media: capture, encode once, fan out packets, WebRTC peers. Knows nothing of HTTP."""
