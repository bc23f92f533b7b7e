"""Static web: the JS SDK (ES modules, no build step), the player page and its assets."""
