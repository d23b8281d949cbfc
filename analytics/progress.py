"""Progress bars (rich) on long analytics work: federated rounds, encryption of many ciphertexts.

Drawn on stderr when it is a terminal, silent otherwise (tests, services, benchmarks printing JSON),
and silent inside another live display (a command's own bar keeps the screen).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a transient progress bar."""
    from rich.console import Console
    from rich.errors import LiveError
    from rich.progress import Progress

    console = Console(stderr=True)
    bar = Progress(console=console, transient=True, disable=not console.is_terminal)
    try:
        bar.start()
    except LiveError:  # another bar is on the screen: just iterate
        yield from items
        return
    try:
        yield from bar.track(items, total=total, description=description)
    finally:
        bar.stop()
