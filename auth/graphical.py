"""Graphical keys: the user's chosen pictures hidden in a fixed, per-user grid of decoys.

Why the grid is fixed: if each login showed fresh decoys, an observer who saw several grids could
intersect them; the chosen pictures are the ones that are always there. A fixed grid (chosen +
decoys, stored at enrolment) makes every observation identical. Only the display order is
shuffled on each login, so positions (smudges, shoulder-surfing of where the user taps) do not
repeat either.

Why decoys come by theme: a secret ("places we visited in Europe") makes users pick pictures of
one theme. If decoys were spread evenly over all themes, the few pictures of that theme would
give the key away. Instead the grid contains *whole* themes: every theme the user chose from, and
at least one further, decoy theme, as far as the grid has room (6 themes of 16, grid of 36). An
attacker who guesses the theme still faces C(16, k) combinations per candidate theme.

Unknown usernames get a grid too, derived from the pepper and the name with the same procedure,
from a simulated choice: asking for a grid reveals nothing about who is registered.
"""

from __future__ import annotations

import math
import random
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidImageSelection, InvalidInput
from .images import BY_ID, LIBRARY, THEMES

_BY_THEME: dict[str, list[str]] = defaultdict(list)
for _spec in LIBRARY:
    _BY_THEME[_spec.theme].append(_spec.id)
_THEME_NAMES = sorted(THEMES)


@dataclass(frozen=True)
class GridImage:
    """One picture as a login page shows it."""

    id: str
    label: str
    theme: str


def library() -> list[GridImage]:
    """Every picture a user can choose from at enrolment, by theme."""
    return [GridImage(s.id, s.label, s.theme) for s in LIBRARY]


def library_label(image_id: str) -> str | None:
    spec = BY_ID.get(image_id)
    return spec.label if spec else None


def validate_choice(image_ids: Sequence[str], *, minimum: int, maximum: int, grid_size: int) -> tuple[str, ...]:
    """Check the pictures a user chose as their graphical key; return them sorted.

    Refuses duplicates, unknown ids, and too few or too many pictures (more than half the grid
    could not be hidden among decoys)."""
    if isinstance(image_ids, str) or not isinstance(image_ids, Sequence):
        raise InvalidImageSelection("the graphical key must be a list of picture ids")
    ids = list(image_ids)
    if not all(isinstance(i, str) for i in ids):
        raise InvalidImageSelection("picture ids must be strings")
    unknown = [i for i in ids if i not in BY_ID]
    if unknown:
        raise InvalidImageSelection(f"unknown picture id(s): {', '.join(sorted(set(unknown))[:5])}")
    if len(set(ids)) != len(ids):
        raise InvalidImageSelection("each picture can be chosen only once")
    if not minimum <= len(ids) <= maximum:
        raise InvalidImageSelection(f"choose between {minimum} and {maximum} pictures (you chose {len(ids)})")
    if len(ids) > grid_size // 2:
        raise InvalidImageSelection("the grid is too small to hide that many pictures")
    return tuple(sorted(ids))


def build_grid(chosen: Sequence[str], seed: bytes, grid_size: int, *, min_themes: int = 2) -> list[str]:
    """The fixed set of pictures shown to this user: the chosen ones and theme-matched decoys.

    Deterministic in ``seed`` (derived from the pepper and the user id), returned sorted: the
    stored form. Callers shuffle for display."""
    if grid_size > len(BY_ID):
        raise InvalidInput("grid_size exceeds the picture library")
    rng = random.Random(int.from_bytes(seed, "big"))
    chosen_by_theme: dict[str, list[str]] = defaultdict(list)
    for i in chosen:
        chosen_by_theme[BY_ID[i].theme].append(i)
    grid_themes = sorted(chosen_by_theme)
    others = [t for t in _THEME_NAMES if t not in chosen_by_theme]
    rng.shuffle(others)
    while len(grid_themes) < min_themes and others:
        grid_themes.append(others.pop())

    quotas = {t: len(chosen_by_theme.get(t, ())) for t in grid_themes}
    remaining = grid_size - sum(quotas.values())
    order = list(grid_themes)
    rng.shuffle(order)
    while remaining > 0 and any(quotas[t] < len(_BY_THEME[t]) for t in order):
        for t in order:
            if remaining > 0 and quotas[t] < len(_BY_THEME[t]):
                quotas[t] += 1
                remaining -= 1

    grid = set(chosen)
    for t in grid_themes:
        pool = [i for i in _BY_THEME[t] if i not in grid]
        grid.update(rng.sample(pool, quotas[t] - len(chosen_by_theme.get(t, ()))))
    if remaining > 0:  # every grid theme is complete: fill from the remaining themes
        pool = [i for t in sorted(others) for i in _BY_THEME[t]]
        grid.update(rng.sample(pool, remaining))
    return sorted(grid)


def simulated_grid(seed: bytes, grid_size: int, *, minimum: int, maximum: int) -> list[str]:
    """A grid for a username that does not exist, from a simulated choice made like a user's
    (mostly one theme, sometimes two or three), so that it looks like any real grid."""
    rng = random.Random(int.from_bytes(seed, "big"))
    k = rng.randint(minimum, maximum)
    n_themes = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
    themes = rng.sample(_THEME_NAMES, n_themes)
    chosen: list[str] = []
    for j in range(k):
        theme = themes[j % n_themes]
        pool = [i for i in _BY_THEME[theme] if i not in chosen]
        chosen.append(rng.choice(pool))
    return build_grid(chosen, seed[::-1], grid_size)


def display_order(grid: Sequence[str]) -> list[GridImage]:
    """The grid in a fresh random order (CSPRNG), as the login page shows it."""
    order = list(grid)
    secrets.SystemRandom().shuffle(order)
    return [GridImage(i, BY_ID[i].label, BY_ID[i].theme) for i in order if i in BY_ID]


def parse_selection(selection: object, grid_size: int) -> tuple[str, ...] | None:
    """The submitted selection in canonical (sorted) form, or ``None`` when it cannot be a key
    (duplicates, unknown ids): such a selection is *wrong*, not malformed, and is answered like a
    wrong key. Only input of the wrong shape raises :class:`InvalidInput`."""
    if isinstance(selection, str) or not isinstance(selection, Sequence):
        raise InvalidInput("the graphical selection must be a list of picture ids")
    if len(selection) == 0 or len(selection) > grid_size:
        raise InvalidInput(f"select between 1 and {grid_size} pictures")
    if not all(isinstance(i, str) and len(i) <= 64 for i in selection):
        raise InvalidInput("picture ids must be short strings")
    if len(set(selection)) != len(selection) or any(i not in BY_ID for i in selection):
        return None
    return tuple(sorted(selection))


def key_space(grid_size: int, k: int) -> int:
    """Number of k-subsets of the grid: the blind-guessing space of a graphical key."""
    return math.comb(grid_size, k)


def themed_key_space(k: int, theme_size: int = 16, themes_in_grid: int = 2) -> int:
    """Combinations left when the attacker knows the key is all one theme but not which of the
    grid's complete themes: the realistic space for a one-theme key."""
    return themes_in_grid * math.comb(theme_size, k)


__all__ = [
    "GridImage",
    "build_grid",
    "display_order",
    "key_space",
    "library",
    "library_label",
    "parse_selection",
    "simulated_grid",
    "themed_key_space",
    "validate_choice",
]
