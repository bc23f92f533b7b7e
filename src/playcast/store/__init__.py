"""State: SQLAlchemy models and queries (SQLite or PostgreSQL). No HTTP, no media."""
