"""The revisions, one file each, named NNNN_slug.py and applied in order; ./dev migration writes new ones.

Never edit a released revision: add a new one."""
