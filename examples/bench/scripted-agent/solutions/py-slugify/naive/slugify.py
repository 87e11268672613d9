"""URL slugs for article titles."""

import re


def slugify(title: str) -> str:
    """Turn a title into a URL slug: lowercase words joined by single hyphens."""
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))
