"""The picture library, fixed per-user grids with theme-matched decoys, graphical logins."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from auth import InvalidCredentials, InvalidInput, LoginRequest
from auth.errors import InvalidImageSelection
from auth.graphical import build_grid, key_space, simulated_grid, themed_key_space, validate_choice
from auth.images import BY_ID, LIBRARY, THEMES, render_png, render_sheet

from .conftest import IMAGES, login, totp_now


def test_library_is_large_distinct_and_renders_deterministically():
    assert len(LIBRARY) == 96 and len(BY_ID) == 96
    assert {s.theme for s in LIBRARY} == set(THEMES)
    assert all(sum(1 for s in LIBRARY if s.theme == t) == 16 for t in THEMES)
    assert len({s.label for s in LIBRARY}) == 96
    png = render_png("animals.owl", 128)
    assert png == render_png.__wrapped__("animals.owl", 128)  # same pixels when rendered again
    img = Image.open(io.BytesIO(png))
    assert img.size == (128, 128) and img.format == "PNG"
    # pictures differ from each other (not blank tiles with a label)
    pixels = {render_png.__wrapped__(i, 48) for i in ("animals.owl", "animals.cat", "food.apple", "nature.sun")}
    assert len(pixels) == 4
    sheet = Image.open(io.BytesIO(render_sheet(["animals.owl", "food.apple"], columns=2, size=64)))
    assert sheet.size[0] > 128
    with pytest.raises(KeyError):
        render_png("animals.unicorn")


def test_grid_holds_the_choice_and_whole_themes():
    chosen = validate_choice(IMAGES[:4] + ["places.castle"], minimum=5, maximum=8, grid_size=36)
    grid = build_grid(chosen, b"seed-1" * 4, 36)
    assert len(grid) == 36 == len(set(grid))
    assert set(chosen) <= set(grid)
    # the key is all places (bar one food picture): every place is in the grid, so the theme does not
    # narrow the key down to the chosen ones
    assert {s.id for s in LIBRARY if s.theme == "places"} <= set(grid)
    # same seed, same grid; another seed, other decoys
    assert build_grid(chosen, b"seed-1" * 4, 36) == grid
    assert build_grid(chosen, b"seed-2" * 4, 36) != grid


def test_one_theme_key_gets_a_decoy_theme():
    chosen = tuple(sorted(["animals.cat", "animals.dog", "animals.owl", "animals.bee", "animals.pig"]))
    grid = build_grid(chosen, b"x" * 24, 36)
    full = [t for t in THEMES if all(s.id in grid for s in LIBRARY if s.theme == t)]
    assert "animals" in full and len(full) >= 2
    assert key_space(36, 5) == 376_992
    assert themed_key_space(5) == 2 * 4368


@pytest.mark.parametrize(
    "choice",
    [
        ["places.paris"] * 5,
        ["places.paris", "places.rome", "places.pisa", "places.nowhere", "food.apple"],
        IMAGES[:3],
        [s.id for s in LIBRARY[:9]],
        "places.paris",
    ],
)
def test_invalid_choices_are_refused(choice):
    with pytest.raises(InvalidImageSelection):
        validate_choice(choice, minimum=5, maximum=8, grid_size=36)


def test_login_grid_is_fixed_per_user_and_only_order_changes(service, doctor):
    grids = [service.login_grid("dr.smith") for _ in range(6)]
    sets = {frozenset(i.id for i in g.images) for g in grids}
    assert sets == {frozenset(doctor.reg.grid)}
    assert len({tuple(i.id for i in g.images) for g in grids}) > 1  # shuffled per login
    assert set(IMAGES) <= set(doctor.reg.grid)


def test_unknown_username_gets_a_plausible_stable_grid(service, doctor):
    a = service.login_grid("nobody.here")
    b = service.login_grid("NOBODY.here")
    assert {i.id for i in a.images} == {i.id for i in b.images}
    assert len(a.images) == len(doctor.reg.grid) == 36
    assert {i.id for i in service.login_grid("someone.else").images} != {i.id for i in a.images}
    assert len(simulated_grid(b"k" * 32, 36, minimum=5, maximum=8)) == 36


def test_graphical_login_in_any_order(service, doctor):
    result = login(service, doctor.reg, method="graphical", images=list(reversed(IMAGES)))
    assert result.method == "graphical" and result.user.user_id == doctor.reg.user.user_id


@pytest.mark.parametrize(
    "selection",
    [
        IMAGES[:4],  # one missing
        [*IMAGES, "places.castle"],  # one too many
        [*IMAGES[:4], "places.castle"],  # one wrong
        [*IMAGES[:4], "places.paris"],  # duplicate
        [*IMAGES[:4], "food.unknown"],  # not a picture
    ],
)
def test_wrong_selection_is_invalid_credentials(service, doctor, selection):
    with pytest.raises(InvalidCredentials) as exc:
        service.begin_login(LoginRequest("dr.smith", "graphical", selection=selection))
    assert exc.value.detail == "The username or key is not correct."


@pytest.mark.parametrize("selection", [None, "places.paris", [], [1, 2, 3], ["x" * 100]])
def test_malformed_selection_is_invalid_input(service, doctor, selection):
    with pytest.raises(InvalidInput):
        service.begin_login(LoginRequest("dr.smith", "graphical", selection=selection))
    assert service.lockout_status("dr.smith") == 0


def test_graphical_login_then_totp(service, doctor):
    challenge = service.begin_login(LoginRequest("dr.smith", "graphical", selection=IMAGES))
    assert challenge.method == "graphical" and "totp" in challenge.factors
    result = service.complete_login(challenge.token, totp_code=totp_now(service, doctor.reg))
    assert result.second_factor == "totp"
