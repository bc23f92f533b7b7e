"""Application content as archives: read members safely (members.py), unpack them so nothing lands outside the
destination (extract.py), pack a tree into a reproducible, content-addressed archive (pack.py).

Shared by the control plane (ingest) and the hosts (content cache); imports neither."""
