"""URL slugs for article titles."""

import re


def slugify(title: str) -> str:
    """Turn a title into a URL slug: lowercase words joined by single hyphens."""
    # TODO: only handles plain ASCII words separated by spaces.
    return title.lower().replace(" ", "-")
