"""The FlexPass image library: 96 labelled pictograms in six themes, drawn from shape lists.

Each picture is a short list of drawing primitives on a 100×100 canvas, rendered by ``render.py``
with Pillow: the library ships as code, needs no download, and renders the same pixels for the
same Pillow version. A picture's id (``theme.name``) is what a graphical key is made of; ids are
stable forever (renaming one would break every key that uses it), labels and drawings may improve.

Themes are large (16 pictures each) because a user's images usually illustrate one theme (their
secret): the grid then shows whole themes, so knowing the theme still leaves many combinations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Shape = tuple[Any, ...]

# palette
INK = "#263238"
WHITE = "#ffffff"
RED = "#e53935"
DARKRED = "#8e1b1b"
ORANGE = "#fb8c00"
YELLOW = "#fdd835"
GOLD = "#f9a825"
GREEN = "#43a047"
DARKGREEN = "#1b5e20"
LIME = "#9ccc65"
TEAL = "#00897b"
BLUE = "#1e88e5"
SKY = "#81d4fa"
NAVY = "#1a237e"
PURPLE = "#8e24aa"
PINK = "#f48fb1"
BROWN = "#795548"
TAN = "#d7b98e"
SAND = "#f0d9a0"
GREY = "#90a4ae"
DARKGREY = "#546e7a"
BLACK = "#212121"


def C(cx: float, cy: float, r: float, fill: str | None, outline: str | None = None, w: int = 0) -> Shape:
    return ("ellipse", (cx - r, cy - r, cx + r, cy + r), fill, outline, w)


def E(x0: float, y0: float, x1: float, y1: float, fill: str | None, outline: str | None = None, w: int = 0) -> Shape:
    return ("ellipse", (x0, y0, x1, y1), fill, outline, w)


def R(x0: float, y0: float, x1: float, y1: float, fill: str | None, outline: str | None = None, w: int = 0) -> Shape:
    return ("rect", (x0, y0, x1, y1), fill, outline, w)


def RR(
    x0: float, y0: float, x1: float, y1: float, radius: float, fill: str | None, outline: str | None = None, w: int = 0
) -> Shape:
    return ("rrect", (x0, y0, x1, y1), fill, radius, outline, w)


def P(fill: str | None, *pts: tuple[float, float], outline: str | None = None) -> Shape:
    return ("poly", pts, fill, outline)


def L(colour: str, width: float, *pts: tuple[float, float]) -> Shape:
    return ("line", pts, colour, width)


def A(x0: float, y0: float, x1: float, y1: float, start: float, end: float, colour: str, width: float) -> Shape:
    return ("arc", (x0, y0, x1, y1), start, end, colour, width)


def S(x0: float, y0: float, x1: float, y1: float, start: float, end: float, fill: str) -> Shape:
    return ("pie", (x0, y0, x1, y1), start, end, fill)


def CH(x0: float, y0: float, x1: float, y1: float, start: float, end: float, fill: str) -> Shape:
    return ("chord", (x0, y0, x1, y1), start, end, fill)


@dataclass(frozen=True)
class ImageSpec:
    id: str
    label: str
    theme: str
    shapes: tuple[Shape, ...]


THEMES: dict[str, tuple[str, str]] = {
    # theme: (title, tile background)
    "places": ("Places", "#e3f2fd"),
    "animals": ("Animals", "#f1f8e9"),
    "food": ("Food", "#fff3e0"),
    "transport": ("Transport", "#ede7f6"),
    "nature": ("Nature", "#e0f7fa"),
    "objects": ("Objects", "#fce4ec"),
}


def _spec(theme: str, name: str, label: str, *shapes: Shape) -> ImageSpec:
    return ImageSpec(f"{theme}.{name}", label, theme, tuple(shapes))


PLACES = (
    _spec("places", "paris", "Paris",
          P(DARKGREY, (50, 2), (56, 30), (66, 70), (78, 98), (64, 98), (50, 72), (36, 98), (22, 98), (34, 70), (44, 30)),
          R(38, 42, 62, 46, INK), R(30, 68, 70, 73, INK), A(36, 80, 64, 110, 180, 360, "#e3f2fd", 6)),
    _spec("places", "rome", "Rome",
          CH(6, 30, 94, 120, 180, 360, TAN), R(6, 74, 94, 98, TAN),
          *[R(12 + 14 * i, 52, 20 + 14 * i, 66, BROWN) for i in range(6)],
          *[R(12 + 14 * i, 76, 20 + 14 * i, 96, BROWN) for i in range(6)]),
    _spec("places", "london", "London",
          R(38, 24, 62, 98, TAN, INK, 2), P(DARKGREY, (38, 24), (50, 2), (62, 24)),
          C(50, 38, 9, WHITE, INK, 2), L(INK, 2, (50, 38), (50, 31)), L(INK, 2, (50, 38), (55, 40)),
          *[R(42, 54 + 12 * i, 58, 60 + 12 * i, BROWN) for i in range(3)]),
    _spec("places", "giza", "Giza",
          R(0, 86, 100, 100, SAND), P(GOLD, (8, 90), (40, 30), (72, 90)), P(TAN, (50, 90), (74, 48), (98, 90)),
          L(BROWN, 1.5, (40, 30), (48, 90)), C(84, 16, 9, ORANGE)),
    _spec("places", "amsterdam", "Amsterdam",
          P(BROWN, (40, 40), (60, 40), (66, 98), (34, 98)), P(DARKRED, (36, 40), (50, 24), (64, 40)),
          L(INK, 5, (20, 10), (80, 58)), L(INK, 5, (80, 10), (20, 58)), C(50, 34, 4, INK),
          R(46, 80, 54, 98, INK), R(0, 96, 100, 100, GREEN)),
    _spec("places", "pisa", "Pisa",
          P(WHITE, (40, 98), (62, 98), (72, 10), (52, 8), outline=INK),
          *[L(GREY, 2, (41 + 2.6 * i, 90 - 11 * i), (62 + 1.2 * i, 90 - 11 * i)) for i in range(8)]),
    _spec("places", "castle", "Castle",
          R(20, 40, 80, 98, GREY), R(8, 24, 28, 98, DARKGREY), R(72, 24, 92, 98, DARKGREY),
          *[R(8 + 7 * i, 18, 12 + 7 * i, 24, DARKGREY) for i in range(3)],
          *[R(72 + 7 * i, 18, 76 + 7 * i, 24, DARKGREY) for i in range(3)],
          CH(40, 62, 60, 90, 180, 360, BROWN), R(40, 76, 60, 98, BROWN), P(RED, (18, 24), (18, 4), (30, 9))),
    _spec("places", "lighthouse", "Lighthouse",
          P(WHITE, (38, 96), (62, 96), (56, 30), (44, 30), outline=INK), P(RED, (41, 72), (59, 72), (58, 58), (42, 58)),
          R(42, 20, 58, 30, YELLOW, INK, 2), P(RED, (40, 20), (50, 8), (60, 20)),
          P(YELLOW, (58, 22), (96, 12), (96, 32)), R(0, 94, 100, 100, BLUE)),
    _spec("places", "bridge", "Bridge",
          R(0, 82, 100, 100, BLUE), R(0, 56, 100, 62, RED), R(20, 16, 28, 82, RED), R(72, 16, 80, 82, RED),
          A(24, 20, 76, 100, 180, 360, INK, 2), A(-28, 20, 24, 100, 270, 360, INK, 2), A(76, 20, 128, 100, 180, 270, INK, 2)),
    _spec("places", "beach", "Beach",
          R(0, 0, 100, 56, SKY), R(0, 56, 100, 74, BLUE), R(0, 74, 100, 100, SAND), C(80, 20, 10, YELLOW),
          L(BROWN, 3, (30, 96), (38, 52)), S(12, 40, 64, 72, 180, 360, RED)),
    _spec("places", "mountains", "Mountains",
          P(DARKGREY, (0, 98), (34, 22), (68, 98)), P(GREY, (36, 98), (70, 34), (100, 98)),
          P(WHITE, (24, 42), (34, 22), (44, 42), (34, 36)), P(WHITE, (62, 48), (70, 34), (78, 48), (70, 44))),
    _spec("places", "island", "Island",
          R(0, 70, 100, 100, BLUE), CH(20, 58, 80, 86, 180, 360, SAND), L(BROWN, 4, (50, 72), (46, 30)),
          P(GREEN, (46, 30), (20, 40), (30, 28)), P(GREEN, (46, 30), (74, 40), (64, 26)), P(GREEN, (46, 30), (40, 12), (56, 16))),
    _spec("places", "desert", "Desert",
          R(0, 0, 100, 100, "#fff8e1"), C(76, 22, 12, ORANGE), CH(-20, 60, 70, 140, 180, 360, SAND),
          CH(40, 70, 130, 130, 180, 360, TAN), R(26, 40, 34, 82, GREEN), R(16, 52, 22, 66, GREEN), R(38, 46, 44, 62, GREEN)),
    _spec("places", "skyline", "Skyline",
          R(4, 50, 20, 98, DARKGREY), R(22, 20, 36, 98, NAVY), R(38, 40, 52, 98, GREY), R(54, 10, 66, 98, INK),
          R(68, 34, 82, 98, DARKGREY), R(84, 56, 96, 98, NAVY), L(INK, 2, (60, 10), (60, 0)),
          *[R(25, 26 + 10 * i, 33, 30 + 10 * i, YELLOW) for i in range(6)]),
    _spec("places", "chapel", "Chapel",
          R(22, 46, 78, 98, WHITE, INK, 2), P(DARKRED, (16, 48), (50, 20), (84, 48)), R(44, 2, 56, 24, WHITE, INK, 2),
          L(INK, 3, (50, 0), (50, 12)), L(INK, 3, (45, 5), (55, 5)), CH(42, 66, 58, 86, 180, 360, BROWN), R(42, 76, 58, 98, BROWN)),
    _spec("places", "campsite", "Campsite",
          R(0, 86, 100, 100, GREEN), P(ORANGE, (10, 88), (40, 28), (70, 88)), P(BROWN, (34, 88), (40, 60), (46, 88)),
          P(DARKGREEN, (70, 88), (84, 40), (98, 88)), C(20, 16, 7, YELLOW)),
)

ANIMALS = (
    _spec("animals", "cat", "Cat",
          P(ORANGE, (22, 40), (28, 8), (44, 28)), P(ORANGE, (78, 40), (72, 8), (56, 28)), C(50, 52, 32, ORANGE),
          C(38, 46, 5, INK), C(62, 46, 5, INK), P(PINK, (46, 58), (54, 58), (50, 64)),
          L(INK, 1.5, (20, 60), (42, 62)), L(INK, 1.5, (20, 70), (42, 65)), L(INK, 1.5, (80, 60), (58, 62)), L(INK, 1.5, (80, 70), (58, 65))),
    _spec("animals", "dog", "Dog",
          C(50, 52, 30, TAN), E(10, 26, 30, 74, BROWN), E(70, 26, 90, 74, BROWN), C(40, 46, 5, INK), C(60, 46, 5, INK),
          E(42, 58, 58, 70, INK), P(RED, (46, 72), (54, 72), (50, 84))),
    _spec("animals", "fish", "Fish",
          E(16, 30, 76, 70, BLUE), P(BLUE, (70, 50), (96, 28), (96, 72)), C(30, 46, 5, WHITE), C(30, 46, 2.5, INK),
          A(40, 36, 60, 64, 300, 60, NAVY, 2)),
    _spec("animals", "bird", "Bird",
          C(44, 54, 28, RED), C(68, 32, 16, RED), P(ORANGE, (82, 30), (98, 36), (82, 40)), C(72, 28, 3, INK),
          P(DARKRED, (20, 50), (50, 50), (34, 74)), L(INK, 2, (40, 82), (36, 98)), L(INK, 2, (52, 82), (56, 98))),
    _spec("animals", "owl", "Owl",
          E(20, 14, 80, 96, BROWN), P(BROWN, (20, 30), (26, 4), (40, 20)), P(BROWN, (80, 30), (74, 4), (60, 20)),
          C(37, 40, 12, WHITE), C(63, 40, 12, WHITE), C(37, 40, 5, INK), C(63, 40, 5, INK),
          P(ORANGE, (46, 52), (54, 52), (50, 62)), E(32, 64, 68, 92, TAN)),
    _spec("animals", "rabbit", "Rabbit",
          E(30, 2, 44, 46, GREY), E(56, 2, 70, 46, GREY), E(34, 8, 40, 40, PINK), E(60, 8, 66, 40, PINK),
          C(50, 62, 28, GREY), C(40, 56, 4, INK), C(60, 56, 4, INK), P(PINK, (46, 66), (54, 66), (50, 71)),
          L(WHITE, 3, (46, 76), (54, 76))),
    _spec("animals", "snail", "Snail",
          E(8, 74, 86, 94, LIME), C(42, 54, 26, ORANGE), A(26, 38, 58, 70, 0, 300, BROWN, 3), A(34, 46, 50, 62, 0, 300, BROWN, 3),
          L(LIME, 3, (80, 80), (90, 56)), L(LIME, 3, (76, 80), (80, 56)), C(90, 54, 3, INK), C(80, 54, 3, INK)),
    _spec("animals", "turtle", "Turtle",
          C(86, 66, 9, LIME), E(14, 76, 28, 96, LIME), E(62, 76, 76, 96, LIME), CH(10, 30, 80, 110, 180, 360, DARKGREEN),
          L(LIME, 2, (45, 30), (45, 70)), L(LIME, 2, (22, 56), (68, 56)), C(89, 63, 2, INK), P(LIME, (10, 70), (2, 76), (12, 76))),
    _spec("animals", "butterfly", "Butterfly",
          E(8, 12, 48, 52, PURPLE), E(52, 12, 92, 52, PURPLE), E(14, 48, 46, 86, PINK), E(54, 48, 86, 86, PINK),
          C(28, 32, 6, YELLOW), C(72, 32, 6, YELLOW), E(45, 20, 55, 86, INK), L(INK, 2, (48, 20), (40, 4)), L(INK, 2, (52, 20), (60, 4))),
    _spec("animals", "bee", "Bee",
          E(30, 12, 54, 44, SKY), E(50, 12, 74, 44, SKY), E(14, 34, 86, 82, YELLOW),
          R(36, 36, 46, 80, INK), R(56, 36, 66, 80, INK), C(20, 56, 3, INK), P(INK, (86, 56), (98, 52), (86, 62))),
    _spec("animals", "mouse", "Mouse",
          C(26, 30, 16, GREY), C(74, 30, 16, GREY), C(26, 30, 9, PINK), C(74, 30, 9, PINK), C(50, 60, 28, GREY),
          C(40, 54, 4, INK), C(60, 54, 4, INK), C(50, 70, 5, PINK), L(INK, 1, (24, 70), (44, 70)), L(INK, 1, (56, 70), (76, 70))),
    _spec("animals", "pig", "Pig",
          P(PINK, (22, 34), (24, 8), (42, 24)), P(PINK, (78, 34), (76, 8), (58, 24)), C(50, 56, 34, PINK),
          E(36, 56, 64, 80, "#f06292"), C(44, 68, 3, DARKRED), C(56, 68, 3, DARKRED), C(36, 44, 4, INK), C(64, 44, 4, INK)),
    _spec("animals", "frog", "Frog",
          E(10, 40, 90, 92, GREEN), C(30, 38, 14, GREEN), C(70, 38, 14, GREEN), C(30, 38, 8, WHITE), C(70, 38, 8, WHITE),
          C(30, 38, 4, INK), C(70, 38, 4, INK), A(28, 52, 72, 80, 20, 160, DARKGREEN, 3)),
    _spec("animals", "penguin", "Penguin",
          E(24, 6, 76, 98, BLACK), E(34, 26, 66, 94, WHITE), C(42, 22, 4, WHITE), C(58, 22, 4, WHITE),
          C(42, 22, 2, INK), C(58, 22, 2, INK), P(ORANGE, (44, 30), (56, 30), (50, 38)),
          E(30, 92, 48, 100, ORANGE), E(52, 92, 70, 100, ORANGE)),
    _spec("animals", "ladybird", "Ladybird",
          C(50, 20, 14, INK), C(50, 58, 36, RED), L(INK, 3, (50, 22), (50, 94)),
          C(34, 44, 6, INK), C(66, 44, 6, INK), C(30, 68, 6, INK), C(70, 68, 6, INK), C(42, 84, 4, INK), C(58, 84, 4, INK)),
    _spec("animals", "whale", "Whale",
          CH(4, 30, 84, 110, 180, 360, NAVY), R(4, 70, 84, 78, NAVY), P(NAVY, (80, 72), (98, 52), (94, 74), (98, 92)),
          C(22, 56, 4, WHITE), L(SKY, 3, (40, 30), (40, 10)), L(SKY, 3, (40, 14), (30, 4)), L(SKY, 3, (40, 14), (50, 4)),
          R(0, 80, 100, 100, BLUE)),
)

FOOD = (
    _spec("food", "apple", "Apple",
          C(36, 58, 28, RED), C(64, 58, 28, RED), L(BROWN, 4, (50, 34), (54, 14)), E(54, 10, 76, 24, GREEN)),
    _spec("food", "banana", "Banana",
          A(6, -30, 94, 90, 30, 150, YELLOW, 18), A(6, -30, 94, 90, 30, 150, GOLD, 2), R(82, 34, 90, 40, BROWN)),
    _spec("food", "cherries", "Cherries",
          C(30, 72, 16, DARKRED), C(70, 72, 16, DARKRED), L(GREEN, 3, (30, 58), (54, 10)), L(GREEN, 3, (70, 58), (54, 10)),
          E(54, 4, 80, 18, GREEN), C(25, 67, 4, PINK), C(65, 67, 4, PINK)),
    _spec("food", "pizza", "Pizza",
          P(GOLD, (10, 16), (90, 16), (50, 98)), R(8, 10, 92, 20, ORANGE), C(38, 34, 7, RED), C(62, 36, 7, RED),
          C(50, 60, 7, RED), C(46, 44, 3, GREEN), C(58, 54, 3, GREEN)),
    _spec("food", "cake", "Cake",
          R(16, 50, 84, 96, PINK), R(16, 50, 84, 60, WHITE), R(16, 72, 84, 76, RED), R(46, 24, 54, 50, SKY),
          P(ORANGE, (50, 8), (44, 22), (56, 22))),
    _spec("food", "icecream", "Ice cream",
          P(TAN, (28, 46), (72, 46), (50, 98)), L(BROWN, 1.5, (36, 56), (58, 80)), L(BROWN, 1.5, (64, 56), (42, 80)),
          C(50, 32, 20, PINK), C(36, 42, 10, PINK), C(64, 42, 10, PINK), C(50, 12, 6, RED)),
    _spec("food", "bread", "Bread",
          E(6, 30, 94, 90, TAN), E(10, 34, 90, 84, ORANGE), L(BROWN, 3, (30, 46), (40, 70)), L(BROWN, 3, (48, 42), (58, 70)),
          L(BROWN, 3, (66, 46), (76, 70))),
    _spec("food", "cheese", "Cheese",
          P(YELLOW, (6, 86), (94, 86), (94, 40), (6, 70)), P(GOLD, (6, 70), (94, 40), (60, 26)),
          C(30, 74, 6, GOLD), C(62, 66, 8, GOLD), C(82, 76, 4, GOLD)),
    _spec("food", "egg", "Fried egg",
          C(36, 50, 30, WHITE), C(62, 56, 30, WHITE), C(70, 36, 18, WHITE), C(50, 52, 16, GOLD), C(45, 47, 4, YELLOW)),
    _spec("food", "carrot", "Carrot",
          P(ORANGE, (26, 24), (46, 16), (84, 96)), L(BROWN, 1.5, (34, 34), (42, 32)), L(BROWN, 1.5, (44, 52), (52, 50)),
          P(GREEN, (30, 22), (14, 2), (28, 10)), P(GREEN, (36, 20), (40, 0), (44, 18)), P(GREEN, (40, 20), (60, 4), (48, 22))),
    _spec("food", "grapes", "Grapes",
          *[C(32 + 12 * i, 34, 8, PURPLE) for i in range(4)], *[C(38 + 12 * i, 48, 8, PURPLE) for i in range(3)],
          *[C(44 + 12 * i, 62, 8, PURPLE) for i in range(2)], C(50, 76, 8, PURPLE),
          L(BROWN, 3, (50, 26), (56, 6)), E(54, 4, 78, 18, GREEN)),
    _spec("food", "coffee", "Coffee",
          R(18, 38, 70, 92, WHITE, INK, 2), A(60, 48, 88, 76, 270, 90, INK, 5), R(20, 40, 68, 48, BROWN),
          A(28, 6, 40, 34, 90, 270, GREY, 2), A(46, 6, 58, 34, 90, 270, GREY, 2), E(10, 90, 78, 98, GREY)),
    _spec("food", "lemon", "Lemon",
          E(8, 24, 92, 80, YELLOW), P(YELLOW, (8, 52), (0, 46), (0, 58)), P(YELLOW, (92, 52), (100, 46), (100, 58)),
          E(60, 14, 84, 26, GREEN)),
    _spec("food", "strawberry", "Strawberry",
          P(RED, (14, 30), (86, 30), (78, 60), (50, 96), (22, 60)), C(32, 32, 18, RED), C(68, 32, 18, RED),
          *[C(x, y, 2, YELLOW) for x, y in ((30, 44), (50, 40), (70, 44), (40, 60), (60, 60), (50, 78))],
          P(GREEN, (30, 18), (50, 6), (70, 18), (50, 24))),
    _spec("food", "watermelon", "Watermelon",
          S(4, -40, 96, 92, 0, 180, GREEN), S(10, -34, 90, 86, 0, 180, RED),
          *[E(x - 2, y - 3, x + 2, y + 3, INK) for x, y in ((30, 40), (50, 46), (70, 40), (40, 60), (60, 60), (50, 74))]),
    _spec("food", "doughnut", "Doughnut",
          C(50, 50, 40, TAN), C(50, 50, 34, PINK), C(50, 50, 12, "#fff3e0"),
          *[L(c, 3, (x, y), (x + 5, y + 3)) for c, x, y in ((BLUE, 30, 30), (YELLOW, 62, 26), (GREEN, 70, 56),
                                                         (WHITE, 30, 62), (BLUE, 48, 76), (YELLOW, 22, 46))]),
)

TRANSPORT = (
    _spec("transport", "car", "Car",
          R(6, 50, 94, 80, RED), P(RED, (24, 50), (34, 28), (68, 28), (80, 50)), P(SKY, (30, 50), (38, 34), (50, 34), (50, 50)),
          P(SKY, (54, 50), (54, 34), (66, 34), (74, 50)), C(28, 82, 11, INK), C(72, 82, 11, INK), C(28, 82, 4, GREY), C(72, 82, 4, GREY)),
    _spec("transport", "bus", "Bus",
          RR(8, 14, 92, 86, 8, YELLOW), *[R(14 + 20 * i, 22, 28 + 20 * i, 44, SKY) for i in range(4)],
          R(8, 58, 92, 62, INK), C(26, 88, 9, INK), C(74, 88, 9, INK), C(16, 74, 4, WHITE), C(84, 74, 4, WHITE)),
    _spec("transport", "train", "Train",
          R(10, 30, 64, 84, GREEN), R(46, 12, 64, 30, DARKGREEN), R(64, 44, 92, 84, GREEN), R(70, 30, 80, 44, INK),
          R(16, 38, 38, 56, SKY), C(24, 88, 10, INK), C(52, 88, 10, INK), C(80, 90, 7, INK), R(0, 96, 100, 100, BROWN),
          C(74, 20, 6, GREY), C(82, 10, 8, GREY)),
    _spec("transport", "bicycle", "Bicycle",
          C(24, 70, 20, None, INK, 4), C(76, 70, 20, None, INK, 4),
          L(BLUE, 4, (24, 70), (44, 40), (70, 40), (76, 70)), L(BLUE, 4, (44, 40), (50, 70), (70, 40)),
          L(INK, 4, (40, 32), (50, 32)), L(INK, 4, (66, 40), (62, 28), (72, 26))),
    _spec("transport", "sailboat", "Sailboat",
          R(0, 86, 100, 100, BLUE), P(BROWN, (10, 72), (90, 72), (76, 88), (24, 88)), L(INK, 3, (50, 72), (50, 6)),
          P(WHITE, (52, 8), (52, 66), (88, 66), outline=INK), P(RED, (48, 18), (48, 66), (20, 66))),
    _spec("transport", "steamship", "Steamship",
          R(0, 88, 100, 100, BLUE), P(INK, (4, 64), (96, 64), (84, 90), (14, 90)), R(20, 48, 78, 64, WHITE, INK, 2),
          R(34, 24, 46, 48, RED), R(54, 24, 66, 48, RED), C(40, 14, 7, GREY), C(60, 10, 6, GREY),
          *[C(28 + 14 * i, 56, 3, SKY) for i in range(4)]),
    _spec("transport", "plane", "Plane",
          E(6, 42, 96, 58, GREY), P(DARKGREY, (40, 50), (62, 50), (40, 90), (30, 90)), P(DARKGREY, (40, 50), (62, 50), (40, 10), (30, 10)),
          P(DARKGREY, (12, 50), (22, 50), (12, 30), (6, 30)), C(88, 50, 4, SKY)),
    _spec("transport", "rocket", "Rocket",
          E(34, 4, 66, 84, WHITE, INK, 2), C(50, 36, 8, SKY), P(RED, (34, 56), (20, 84), (38, 78)),
          P(RED, (66, 56), (80, 84), (62, 78)), P(ORANGE, (40, 82), (60, 82), (50, 100)), P(YELLOW, (45, 82), (55, 82), (50, 94))),
    _spec("transport", "helicopter", "Helicopter",
          E(14, 34, 70, 78, BLUE), E(40, 40, 64, 60, SKY), R(64, 50, 96, 56, BLUE), R(90, 38, 96, 56, BLUE),
          L(INK, 4, (42, 34), (42, 22)), L(INK, 4, (6, 20), (80, 20)), L(INK, 3, (24, 78), (20, 90)), L(INK, 3, (56, 78), (60, 90)),
          L(INK, 4, (10, 90), (70, 90))),
    _spec("transport", "truck", "Truck",
          R(4, 30, 62, 78, ORANGE), P(BLUE, (62, 44), (84, 44), (96, 60), (96, 78), (62, 78)), P(SKY, (68, 48), (82, 48), (90, 60), (68, 60)),
          C(22, 82, 10, INK), C(50, 82, 10, INK), C(80, 82, 10, INK), C(22, 82, 4, GREY), C(50, 82, 4, GREY), C(80, 82, 4, GREY)),
    _spec("transport", "tractor", "Tractor",
          R(40, 30, 72, 66, GREEN), R(44, 34, 68, 50, SKY), R(10, 50, 44, 72, GREEN), R(16, 38, 22, 50, INK),
          C(64, 74, 22, INK), C(64, 74, 9, YELLOW), C(22, 82, 14, INK), C(22, 82, 5, YELLOW)),
    _spec("transport", "balloon", "Balloon",
          C(50, 38, 34, RED), P(RED, (20, 54), (80, 54), (58, 76), (42, 76)),
          E(34, 4, 66, 72, YELLOW), E(44, 4, 56, 72, RED), L(BROWN, 1.5, (42, 76), (42, 84)), L(BROWN, 1.5, (58, 76), (58, 84)),
          R(40, 84, 60, 98, BROWN)),
    _spec("transport", "submarine", "Submarine",
          R(0, 0, 100, 100, "#b3e5fc"), E(6, 40, 94, 80, YELLOW), R(40, 24, 62, 44, YELLOW), L(INK, 3, (52, 24), (52, 10), (62, 10)),
          C(30, 60, 6, SKY, INK, 2), C(50, 60, 6, SKY, INK, 2), C(70, 60, 6, SKY, INK, 2), C(20, 24, 4, WHITE), C(12, 14, 3, WHITE)),
    _spec("transport", "tram", "Tram",
          L(INK, 2, (50, 2), (38, 20)), L(INK, 2, (10, 2), (90, 2)), RR(10, 20, 90, 88, 6, RED),
          *[R(16 + 18 * i, 28, 28 + 18 * i, 50, SKY) for i in range(4)], R(10, 64, 90, 68, WHITE),
          C(28, 92, 6, INK), C(72, 92, 6, INK), R(0, 96, 100, 100, DARKGREY)),
    _spec("transport", "motorbike", "Motorbike",
          C(20, 72, 16, None, INK, 6), C(80, 72, 16, None, INK, 6), P(RED, (30, 56), (70, 56), (62, 70), (38, 70)),
          E(36, 44, 62, 58, RED), L(INK, 4, (70, 56), (80, 72)), L(INK, 4, (70, 56), (72, 38), (82, 36)), R(30, 42, 48, 48, INK)),
    _spec("transport", "canoe", "Canoe",
          R(0, 76, 100, 100, BLUE), CH(4, 30, 96, 90, 0, 180, BROWN), R(4, 58, 96, 62, TAN),
          L(TAN, 4, (60, 20), (30, 92)), E(24, 84, 36, 100, TAN), C(58, 40, 8, ORANGE), R(52, 48, 64, 60, ORANGE)),
)

NATURE = (
    _spec("nature", "sun", "Sun",
          C(50, 50, 24, YELLOW), *[L(ORANGE, 5, (50 + 30 * dx, 50 + 30 * dy), (50 + 44 * dx, 50 + 44 * dy))
                                   for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1), (0.7, 0.7), (-0.7, 0.7), (0.7, -0.7), (-0.7, -0.7))]),
    _spec("nature", "moon", "Moon",
          R(0, 0, 100, 100, NAVY), C(46, 50, 34, YELLOW), C(62, 40, 30, NAVY), C(84, 16, 3, WHITE), C(80, 80, 2, WHITE)),
    _spec("nature", "star", "Star",
          P(GOLD, (50, 4), (61, 37), (96, 37), (68, 58), (79, 92), (50, 71), (21, 92), (32, 58), (4, 37), (39, 37))),
    _spec("nature", "cloud", "Cloud",
          C(30, 60, 20, GREY), C(52, 44, 26, GREY), C(74, 60, 20, GREY), R(30, 60, 74, 80, GREY), C(30, 58, 18, WHITE),
          C(52, 42, 24, WHITE), C(74, 58, 18, WHITE), R(30, 58, 74, 76, WHITE)),
    _spec("nature", "rain", "Rain",
          C(30, 36, 18, GREY), C(52, 24, 22, GREY), C(74, 36, 18, GREY), R(30, 36, 74, 52, GREY),
          *[L(BLUE, 4, (x, y), (x - 6, y + 14)) for x, y in ((30, 62), (50, 68), (70, 62), (40, 82), (62, 84))]),
    _spec("nature", "snowflake", "Snowflake",
          *[L(BLUE, 5, (50 - 44 * dx, 50 - 44 * dy), (50 + 44 * dx, 50 + 44 * dy)) for dx, dy in ((0, 1), (0.87, 0.5), (0.87, -0.5))],
          *[L(BLUE, 3, (50 + 30 * dx, 50 + 30 * dy), (50 + 30 * dx + 10 * ex, 50 + 30 * dy + 10 * ey))
            for dx, dy, ex, ey in ((0, 1, 0.7, 0.7), (0, 1, -0.7, 0.7), (0, -1, 0.7, -0.7), (0, -1, -0.7, -0.7))],
          C(50, 50, 6, SKY)),
    _spec("nature", "lightning", "Lightning",
          C(34, 24, 18, DARKGREY), C(60, 18, 20, DARKGREY), R(34, 24, 80, 38, DARKGREY), C(80, 28, 12, DARKGREY),
          P(YELLOW, (52, 36), (36, 68), (50, 68), (40, 98), (70, 58), (56, 58), (66, 36))),
    _spec("nature", "rainbow", "Rainbow",
          *[A(4 + 6 * i, 20 + 6 * i, 96 - 6 * i, 112 - 6 * i, 180, 360, c, 6)
            for i, c in enumerate((RED, ORANGE, YELLOW, GREEN, BLUE, PURPLE))], C(16, 86, 10, WHITE), C(84, 86, 10, WHITE)),
    _spec("nature", "tree", "Tree",
          R(42, 56, 58, 98, BROWN), C(50, 36, 28, GREEN), C(30, 50, 16, GREEN), C(70, 50, 16, GREEN), C(40, 30, 4, RED), C(62, 44, 4, RED)),
    _spec("nature", "pine", "Pine tree",
          R(44, 80, 56, 98, BROWN), P(DARKGREEN, (50, 4), (72, 36), (28, 36)), P(DARKGREEN, (50, 22), (80, 60), (20, 60)),
          P(DARKGREEN, (50, 40), (88, 84), (12, 84))),
    _spec("nature", "flower", "Flower",
          L(GREEN, 4, (50, 50), (50, 98)), E(50, 70, 72, 82, GREEN),
          *[C(50 + 18 * dx, 36 + 18 * dy, 13, PINK) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))], C(50, 36, 10, YELLOW)),
    _spec("nature", "leaf", "Leaf",
          P(GREEN, (10, 90), (20, 40), (50, 14), (92, 8), (86, 50), (60, 80)), L(DARKGREEN, 3, (10, 90), (80, 18)),
          L(DARKGREEN, 2, (36, 64), (34, 44)), L(DARKGREEN, 2, (50, 50), (64, 56)), L(DARKGREEN, 2, (60, 40), (60, 24))),
    _spec("nature", "volcano", "Volcano",
          P(BROWN, (4, 98), (38, 36), (62, 36), (96, 98)), P(ORANGE, (38, 36), (62, 36), (58, 56), (50, 48), (42, 60)),
          C(40, 22, 10, GREY), C(56, 14, 12, GREY), C(70, 6, 8, GREY)),
    _spec("nature", "mushroom", "Mushroom",
          R(40, 50, 60, 94, "#fff8e1", INK, 1), CH(8, 10, 92, 80, 180, 360, RED), R(8, 44, 92, 48, RED),
          C(30, 30, 6, WHITE), C(52, 20, 6, WHITE), C(72, 32, 6, WHITE), R(0, 94, 100, 100, GREEN)),
    _spec("nature", "wave", "Wave",
          R(0, 60, 100, 100, BLUE), S(20, 10, 100, 90, 90, 270, BLUE), C(66, 50, 22, "#e0f7fa"), R(44, 60, 100, 100, BLUE),
          C(30, 30, 4, WHITE), C(40, 20, 3, WHITE)),
    _spec("nature", "cactus", "Cactus",
          RR(40, 14, 60, 86, 10, GREEN), RR(16, 36, 28, 66, 6, GREEN), R(16, 58, 44, 66, GREEN),
          RR(72, 26, 84, 56, 6, GREEN), R(58, 48, 84, 56, GREEN), P(ORANGE, (30, 86), (70, 86), (64, 98), (36, 98))),
)

OBJECTS = (
    _spec("objects", "key", "Key",
          C(28, 50, 20, GOLD), C(28, 50, 8, "#fce4ec"), R(44, 46, 94, 54, GOLD), R(76, 54, 82, 68, GOLD), R(86, 54, 92, 64, GOLD)),
    _spec("objects", "bulb", "Light bulb",
          C(50, 38, 28, YELLOW), P(YELLOW, (32, 56), (68, 56), (62, 72), (38, 72)), R(38, 72, 62, 90, GREY),
          L(DARKGREY, 2, (38, 78), (62, 78)), L(DARKGREY, 2, (38, 84), (62, 84)), L(ORANGE, 2, (44, 60), (50, 40), (56, 60))),
    _spec("objects", "clock", "Clock",
          C(50, 50, 42, WHITE, INK, 4), *[C(50 + 34 * dx, 50 + 34 * dy, 2.5, INK) for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))],
          L(INK, 4, (50, 50), (50, 22)), L(RED, 3, (50, 50), (70, 60)), C(50, 50, 3, INK)),
    _spec("objects", "umbrella", "Umbrella",
          CH(6, 10, 94, 90, 180, 360, PURPLE), *[C(x, 50, 6, "#fce4ec") for x in (18, 38, 62, 82)], R(6, 50, 94, 52, "#fce4ec"),
          L(INK, 4, (50, 10), (50, 86)), A(50, 76, 66, 96, 0, 180, INK, 4)),
    _spec("objects", "book", "Book",
          P(BLUE, (10, 20), (48, 26), (48, 92), (10, 86)), P(NAVY, (90, 20), (52, 26), (52, 92), (90, 86)),
          *[L(WHITE, 2, (16, 36 + 10 * i), (42, 40 + 10 * i)) for i in range(4)],
          *[L(SKY, 2, (58, 40 + 10 * i), (84, 36 + 10 * i)) for i in range(4)]),
    _spec("objects", "glasses", "Glasses",
          C(28, 56, 18, SKY, INK, 4), C(72, 56, 18, SKY, INK, 4), A(42, 44, 58, 60, 200, 340, INK, 4),
          L(INK, 4, (10, 52), (4, 36)), L(INK, 4, (90, 52), (96, 36))),
    _spec("objects", "hat", "Hat",
          E(4, 70, 96, 90, BLACK), R(26, 24, 74, 80, BLACK), R(26, 62, 74, 70, RED)),
    _spec("objects", "anchor", "Anchor",
          C(50, 16, 9, None, NAVY, 5), L(NAVY, 6, (50, 25), (50, 90)), L(NAVY, 6, (30, 36), (70, 36)),
          A(14, 40, 86, 96, 0, 180, NAVY, 6), P(NAVY, (8, 70), (20, 62), (16, 76)), P(NAVY, (92, 70), (80, 62), (84, 76))),
    _spec("objects", "bell", "Bell",
          P(GOLD, (30, 30), (70, 30), (80, 72), (20, 72)), C(50, 32, 20, GOLD), R(12, 72, 88, 80, GOLD), C(50, 88, 7, BROWN),
          C(50, 10, 5, None, BROWN, 3)),
    _spec("objects", "envelope", "Envelope",
          R(6, 22, 94, 80, WHITE, INK, 3), L(INK, 3, (6, 22), (50, 56), (94, 22)), L(GREY, 2, (6, 80), (40, 50)),
          L(GREY, 2, (94, 80), (60, 50)), R(74, 28, 88, 40, RED)),
    _spec("objects", "camera", "Camera",
          RR(6, 28, 94, 86, 8, DARKGREY), R(30, 16, 56, 28, DARKGREY), C(50, 56, 22, INK), C(50, 56, 14, BLUE),
          C(46, 52, 4, WHITE), R(76, 36, 86, 42, YELLOW)),
    _spec("objects", "guitar", "Guitar",
          C(40, 72, 24, ORANGE), C(56, 50, 17, ORANGE), C(44, 68, 7, INK), L(BROWN, 6, (50, 60), (86, 10)),
          R(82, 2, 94, 14, BROWN), L(INK, 4, (30, 84), (50, 80))),
    _spec("objects", "football", "Football",
          C(50, 50, 42, WHITE, INK, 3), P(INK, (50, 36), (63, 45), (58, 60), (42, 60), (37, 45)),
          L(INK, 2, (50, 36), (50, 10)), L(INK, 2, (63, 45), (88, 38)), L(INK, 2, (58, 60), (74, 82)),
          L(INK, 2, (42, 60), (26, 82)), L(INK, 2, (37, 45), (12, 38))),
    _spec("objects", "trophy", "Trophy",
          P(GOLD, (24, 10), (76, 10), (70, 44), (50, 58), (30, 44)), A(8, 14, 34, 44, 90, 270, GOLD, 5),
          A(66, 14, 92, 44, 270, 90, GOLD, 5), R(44, 56, 56, 76, GOLD), R(30, 76, 70, 92, BROWN), P(WHITE, (50, 18), (54, 28), (46, 28))),
    _spec("objects", "dice", "Dice",
          RR(12, 12, 88, 88, 12, WHITE, INK, 3),
          *[C(x, y, 6, INK) for x, y in ((30, 30), (70, 30), (50, 50), (30, 70), (70, 70))]),
    _spec("objects", "kite", "Kite",
          P(RED, (50, 4), (82, 36), (50, 72), (18, 36)), P(YELLOW, (50, 4), (82, 36), (50, 36)), P(YELLOW, (50, 36), (18, 36), (50, 72)),
          L(INK, 2, (50, 72), (44, 82), (56, 90), (48, 100)), P(BLUE, (44, 82), (38, 78), (40, 86))),
)

LIBRARY: tuple[ImageSpec, ...] = PLACES + ANIMALS + FOOD + TRANSPORT + NATURE + OBJECTS
BY_ID: dict[str, ImageSpec] = {spec.id: spec for spec in LIBRARY}

if len(BY_ID) != len(LIBRARY):  # pragma: no cover - a programming error caught by the tests
    raise RuntimeError("image ids must be unique")
