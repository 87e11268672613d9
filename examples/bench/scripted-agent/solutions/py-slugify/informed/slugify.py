"""URL slugs for article titles."""

import re
import unicodedata


def slugify(title: str) -> str:
    """Turn a title into a URL slug: lowercase words joined by single hyphens."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))
