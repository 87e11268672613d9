from slugify import slugify


def test_punctuation_and_spaces_collapse():
    assert slugify("  Hello,   World!  ") == "hello-world"


def test_accents_become_ascii():
    assert slugify("Crème Brûlée à la carte") == "creme-brulee-a-la-carte"


def test_only_ascii_letters_digits_and_hyphens():
    assert slugify("Ünïcode — 2024 édition") == "unicode-2024-edition"
