"""Tools of your own as a Python class: every public method with a docstring is a tool, its type hints the schema.

    imaginarium tools list --tools-from python:examples/pantry.py:Pantry
"""


class Pantry:
    """A kitchen pantry."""

    def __init__(self):
        self.stock = {"rice": 2000, "flour": 1500, "sugar": 800, "lentils": 500}

    def grams_left(self, item: str) -> int:
        """How many grams of an item are left in the pantry.

        Args:
            item: rice, flour, sugar or lentils.
        """
        return self.stock[item.strip().lower()]

    def servings(self, item: str, grams_per_serving: int = 75) -> int:
        """How many servings the pantry's stock of an item makes.

        Args:
            item: rice, flour, sugar or lentils.
            grams_per_serving: grams in one serving.
        """
        return self.stock[item.strip().lower()] // grams_per_serving
