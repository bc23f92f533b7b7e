"""The bundled demo game (pygame on X11)."""
