"""The README's problem-type table is the code's catalogue (gateway/problems.py plus the slugs
auth, the vault and each blueprint register): the same slugs with the same statuses, both ways —
and wherever the README names a slug next to a status code, the code sends that status."""

from __future__ import annotations

import re
from pathlib import Path

from gateway import problems as P

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `([a-z0-9-]+)` \| (\d{3}) \| (.+) \|$")


def readme_table() -> dict[str, tuple[int, str]]:
    text = README.read_text()
    block = text.split("<!-- problem-types: begin -->", 1)[1].split("<!-- problem-types: end -->", 1)[0]
    return {m[1]: (int(m[2]), m[3]) for m in (ROW.match(line) for line in block.splitlines()) if m}


def catalogue(app) -> dict[str, P.ProblemType]:
    assert app.extensions.get("serums_services") is not None  # the whole API is mounted: every slug registered
    return dict(P.TYPES)


def test_the_readme_table_is_the_catalogue(app):
    table, cat = readme_table(), catalogue(app)
    missing = [f"| `{s}` | {pt.status} | {pt.title} |" for s, pt in sorted(cat.items()) if s not in table]
    unknown = sorted(set(table) - set(cat))
    wrong = {s: (table[s][0], cat[s].status) for s in table if s in cat and table[s][0] != cat[s].status}
    assert not missing, "add to README's problem-types table:\n" + "\n".join(missing)
    assert not unknown, f"README lists problem types the code does not have: {unknown}"
    assert not wrong, f"README status differs from the code's (README, code): {wrong}"


def test_statuses_named_next_to_slugs_in_the_prose_match(app):
    cat = catalogue(app)
    text = README.read_text().split("<!-- problem-types: begin -->", 1)[0]
    pairs = re.findall(r"\b([1-5]\d\d) `([a-z0-9]+(?:-[a-z0-9]+)+)`", text)
    pairs += [(status, slug) for slug, status in re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)+)` ([1-5]\d\d)\b", text)]
    wrong = sorted({(slug, int(status), cat[slug].status) for status, slug in pairs
                    if slug in cat and int(status) != cat[slug].status})
    assert pairs and not wrong, f"README says (slug, status) where the code sends another status: {wrong}"
