"""Sub-command modules of ``serums``: each exposes ``register(subparsers)``."""
