"""The picture library graphical keys are made of, shipped as code and rendered with Pillow."""

from .library import BY_ID, LIBRARY, THEMES, ImageSpec
from .render import export_library, render, render_png, render_sheet

__all__ = ["BY_ID", "LIBRARY", "THEMES", "ImageSpec", "export_library", "render", "render_png", "render_sheet"]
