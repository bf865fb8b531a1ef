"""cosine metric (under construction)."""


def register_all(register):
    pass
