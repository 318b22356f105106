"""Check a built documentation site for Sphinx roles that reached the page as text.

The API reference renders docstrings with mkdocstrings (Google style, Markdown): a Sphinx role
such as ``:func:`robust_accuracy``` is not understood there and shows up literally, as
``:func:`` before a code span. This script counts them per page, lists where they are, and
exits with 1 when there are any (``--count-only``: print the count and exit 0).

Usage: python scripts/check_site.py SITE_DIR [--count-only]
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

# a role as it renders: ":func:" right before a code span, or still in backticks
RAW_ROLE = re.compile(
    r":(?P<role>func|class|mod|data|meth|attr|exc|obj|py:\w+):(?:<code>|`)(?P<target>[^<`]*)"
)


def raw_roles(site: Path) -> dict[str, list[str]]:
    """Page (relative to ``site``) -> the raw roles on it, as ``:func:name``."""
    found: dict[str, list[str]] = {}
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8", errors="replace")
        roles = [
            f":{match['role']}:{html.unescape(match['target'])}"
            for match in RAW_ROLE.finditer(text)
        ]
        if roles:
            found[str(page.relative_to(site))] = roles
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir)")
    parser.add_argument("--count-only", action="store_true", help="report, never fail")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"error: {args.site} is not a built site (no index.html)", file=sys.stderr)
        return 2
    found = raw_roles(args.site)
    total = sum(len(roles) for roles in found.values())
    for page, roles in found.items():
        print(f"{page}: {len(roles)} raw role(s): {', '.join(roles)}")
    print(f"{total} raw Sphinx role(s) in {args.site}")
    return 0 if args.count_only or total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
