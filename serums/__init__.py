"""The `serums` command and configuration: wires the pieces together."""

__version__ = "0.1.0"
