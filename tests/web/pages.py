"""Driving the pages as a person does: signing in by clicking and typing."""

from __future__ import annotations

import re

from tests.gateway.stack import IMAGES, KEY, Account


def next_factor(account: Account) -> tuple[str, str]:
    """A second factor never used before: the TOTP codes of this and the next step, then recovery codes."""
    n = account.logins
    account.logins += 1
    if n < 2:
        return "totp", account.totp(offset_steps=n)
    return "recovery", account.reg.recovery_codes[n - 2]


def sign_in(page, account: Account, *, method: str = "text", path: str = "/") -> None:
    page.goto(path)
    page.get_by_label("Username").fill(account.username)
    if method == "text":
        page.get_by_role("button", name="Use my textual key").click()
        page.get_by_label("Your textual key").fill(account.key)
    else:
        page.get_by_role("button", name="Use my pictures").click()
        for image_id in account.images:
            page.locator(f"input[name=selection][value='{image_id}']").check()
    page.get_by_role("button", name="Continue").click()
    kind, code = next_factor(account)
    page.get_by_label("The 6-digit code from your authenticator app").fill(code)
    if kind == "recovery":
        page.get_by_label("One of my recovery codes").check()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("text=Signed in as")


def choose_secret(page, key: str = KEY, images: list[str] = IMAGES) -> None:
    """On an enrolment form: type the textual key (the strength feedback says it will do), again, and pick the pictures."""
    page.get_by_label(re.compile("^Your textual key")).fill(key)
    page.locator("#strength").filter(has_text="strong enough").wait_for()
    page.get_by_label("The same sentence again").fill(key)
    for image_id in images:
        page.locator(f"input[name=images][value='{image_id}']").check()
