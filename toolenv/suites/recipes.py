"""Recipes and nutrition over bundled data (toolenv/data/recipes.json, toolenv/data/nutrition.json).

Every recipe ingredient is a key of the nutrition table, so nutrition per serving and diet tags are computed
from the ingredients rather than typed in by hand, and cannot contradict them.
"""
from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Food"
NUTRIENTS = ("calories_kcal", "protein_g", "fat_g", "carbs_g", "fiber_g", "sugar_g", "sodium_mg")
VOLUME_ML = {"ml": 1.0, "l": 1000.0, "tsp": 5.0, "tbsp": 15.0, "cup": 240.0}
MASS_G = {"g": 1.0, "kg": 1000.0, "oz": 28.3495, "lb": 453.592}
# a diet excludes ingredients carrying any of these tags
DIETS = {
    "vegetarian": {"meat", "fish"},
    "vegan": {"meat", "fish", "dairy", "egg", "honey"},
    "pescatarian": {"meat"},
    "gluten-free": {"gluten"},
    "dairy-free": {"dairy"},
    "nut-free": {"nuts"},
}


def _load(name: str) -> dict:
    return json.loads(resources.files("toolenv").joinpath(f"data/{name}").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _nutrition() -> dict:
    return _load("nutrition.json")["ingredients"]


@lru_cache(maxsize=1)
def _recipes() -> dict:
    data = _load("recipes.json")
    return {"recipes": {r["name"].casefold(): r for r in data["recipes"]}, "substitutions": data["substitutions"]}


def _diets(ingredients: list[str]) -> list[str]:
    tags = set().union(*(_nutrition()[i]["tags"] for i in ingredients))
    return [diet for diet, banned in DIETS.items() if not tags & banned]


def _close(name: str, choices, what: str) -> ToolError:
    close = difflib.get_close_matches(name.casefold(), list(choices), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ToolError(f"unknown {what} '{name}'.{hint}")


def _ingredient(name: str) -> tuple[str, dict]:
    key = name.strip().casefold()
    table = _nutrition()
    if key in table:
        return key, table[key]
    if key.endswith("s") and key[:-1] in table:  # "eggs", "onions"
        return key[:-1], table[key[:-1]]
    raise _close(name, table, "ingredient")


def _recipe(name: str) -> dict:
    recipes = _recipes()["recipes"]
    key = name.strip().casefold()
    if key in recipes:
        return recipes[key]
    partial = [r for k, r in recipes.items() if key in k]
    if len(partial) == 1:
        return partial[0]
    if partial:
        raise ToolError(f"'{name}' matches several recipes: {', '.join(r['name'] for r in partial)}")
    raise _close(name, recipes, "recipe")


def _grams(item: str, info: dict, quantity: float, unit: str) -> float:
    if unit in MASS_G:
        return quantity * MASS_G[unit]
    if unit in VOLUME_ML:
        if "density_g_per_ml" not in info:
            raise ToolError(f"'{item}' is not measured by volume; give the amount in g, kg, oz or lb")
        return quantity * VOLUME_ML[unit] * info["density_g_per_ml"]
    if "piece_g" not in info:
        raise ToolError(f"'{item}' is not counted in pieces; give the amount by weight")
    return quantity * info["piece_g"]


def _facts(grams_by_item: list[tuple[dict, float]], divide_by: float = 1.0) -> dict:
    return {n: round(sum(info[n] * g / 100 for info, g in grams_by_item) / divide_by, 1) for n in NUTRIENTS}


def _summary(recipe: dict) -> dict:
    items = [i["item"] for i in recipe["ingredients"]]
    return {"name": recipe["name"], "cuisine": recipe["cuisine"], "servings": recipe["servings"],
            "total_minutes": recipe["prep_minutes"] + recipe["cook_minutes"], "diets": _diets(items)}


def search_recipes(sort_by: str, limit: int, ingredients: list[str] | None = None,
                   exclude_ingredients: list[str] | None = None, cuisine: str | None = None,
                   diet: str | None = None, max_minutes: int | None = None) -> dict:
    """Recipes containing all wanted ingredients, none of the excluded ones, and meeting cuisine/diet/time."""
    wanted = [_ingredient(i)[0] for i in ingredients or []]
    unwanted = [_ingredient(i)[0] for i in exclude_ingredients or []]
    cuisines = {r["cuisine"].casefold() for r in _recipes()["recipes"].values()}
    if cuisine and cuisine.strip().casefold() not in cuisines:
        raise ToolError(f"unknown cuisine '{cuisine}'; known: {', '.join(sorted(c.title() for c in cuisines))}")
    hits = []
    for recipe in _recipes()["recipes"].values():
        items = {i["item"] for i in recipe["ingredients"]}
        summary = _summary(recipe)
        if (set(wanted) <= items and not items & set(unwanted)
                and (not cuisine or recipe["cuisine"].casefold() == cuisine.strip().casefold())
                and (not diet or diet in summary["diets"])
                and (max_minutes is None or summary["total_minutes"] <= max_minutes)):
            hits.append(summary)
    hits.sort(key=(lambda s: (s["total_minutes"], s["name"])) if sort_by == "time" else (lambda s: s["name"]))
    return {"total_matches": len(hits), "recipes": hits[:limit]}


def get_recipe(name: str, servings: int | None = None) -> dict:
    """A recipe's ingredient list, scaled linearly when a different number of servings is asked for."""
    recipe = _recipe(name)
    target = servings or recipe["servings"]
    factor = target / recipe["servings"]
    return {
        **_summary(recipe),
        "servings": target,
        "original_servings": recipe["servings"],
        "scale_factor": round(factor, 4),
        "prep_minutes": recipe["prep_minutes"],
        "cook_minutes": recipe["cook_minutes"],
        "ingredients": [{"item": i["item"], "quantity": round(i["quantity"] * factor, 2), "unit": i["unit"]}
                        for i in recipe["ingredients"]],
    }


def ingredient_nutrition(ingredient: str, amount: float, unit: str) -> dict:
    """Nutrition facts of an amount of one ingredient, converting volumes and pieces to grams first."""
    item, info = _ingredient(ingredient)
    grams = _grams(item, info, amount, unit)
    return {"ingredient": item, "amount": amount, "unit": unit, "grams": round(grams, 1), **_facts([(info, grams)]),
            "tags": info["tags"]}


def recipe_nutrition(name: str, per: str) -> dict:
    """Nutrition of a whole recipe or one serving, summed over its ingredients."""
    recipe = _recipe(name)
    table = _nutrition()
    weighed = [(table[i["item"]], _grams(i["item"], table[i["item"]], i["quantity"], i["unit"]))
               for i in recipe["ingredients"]]
    divide = recipe["servings"] if per == "serving" else 1
    facts = _facts(weighed, divide)
    energy = facts["protein_g"] * 4 + facts["carbs_g"] * 4 + facts["fat_g"] * 9
    return {
        "name": recipe["name"], "per": per, "servings": recipe["servings"],
        "weight_g": round(sum(g for _, g in weighed) / divide, 1), **facts,
        "calories_from_fat_percent": round(100 * facts["fat_g"] * 9 / energy, 1) if energy else 0.0,
    }


def suggest_substitutions(ingredient: str, diet: str | None = None, amount: float | None = None,
                          unit: str = "g") -> dict:
    """Substitutes for an ingredient with replacement ratios, optionally only those fitting a diet."""
    item, _ = _ingredient(ingredient)
    options = _recipes()["substitutions"].get(item)
    if not options:
        known = ", ".join(sorted(_recipes()["substitutions"]))
        raise ToolError(f"no substitutions known for '{item}'; known ingredients: {known}")
    table = _nutrition()
    result = []
    for option in options:
        tags = table[option["substitute"]]["tags"]
        if diet and set(tags) & DIETS[diet]:
            continue
        entry = {"substitute": option["substitute"], "ratio": option["ratio"], "note": option["note"], "tags": tags}
        if amount is not None:
            entry["amount"] = round(amount * option["ratio"], 2)
            entry["unit"] = unit
        result.append(entry)
    return {"ingredient": item, "diet": diet, "substitutes": result}


DIET = {"type": "string", "enum": list(DIETS), "description": "Dietary requirement."}
AMOUNT_UNITS = list(MASS_G) + list(VOLUME_ML) + ["piece"]

TOOLS = [
    Tool(ToolSpec(
        name="search_recipes",
        description="Find recipes by ingredients they must contain, ingredients to avoid, cuisine, diet "
                    "(vegetarian, vegan, pescatarian, gluten-free, dairy-free, nut-free) and maximum total "
                    "time in minutes.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "ingredients": {"type": "array", "items": {"type": "string"},
                            "description": "Ingredients that must all appear, e.g. ['chickpeas', 'garlic']."},
            "exclude_ingredients": {"type": "array", "items": {"type": "string"},
                                    "description": "Ingredients that must not appear."},
            "cuisine": {"type": "string", "description": "Cuisine, e.g. 'Italian', 'Indian', 'Mexican'."},
            "diet": DIET,
            "max_minutes": {"type": "integer", "minimum": 1, "description": "Maximum prep + cook time."},
            "sort_by": {"type": "string", "enum": ["time", "name"], "default": "time",
                        "description": "Quickest first, or alphabetical."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10, "description": "Maximum results."},
        }, "required": []},
        returns="{total_matches, recipes: [{name, cuisine, servings, total_minutes, diets}]}",
        examples=({"arguments": {"ingredients": ["tofu"]}},
                  {"arguments": {"cuisine": "Indian", "diet": "vegan"}}),
    ), search_recipes),
    Tool(ToolSpec(
        name="get_recipe",
        description="Get a recipe's ingredient list with quantities, times, cuisine and diet tags, optionally "
                    "scaled to a different number of servings.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1, "description": "Recipe name (or a unique part of it)."},
            "servings": {"type": "integer", "minimum": 1, "maximum": 100,
                         "description": "Scale the quantities to this many servings."},
        }, "required": ["name"]},
        returns="{name, cuisine, servings, original_servings, scale_factor, total_minutes, prep_minutes, "
                "cook_minutes, diets, ingredients: [{item, quantity, unit}]}",
        examples=({"arguments": {"name": "Guacamole"}}, {"arguments": {"name": "Ratatouille", "servings": 2}}),
    ), get_recipe),
    Tool(ToolSpec(
        name="ingredient_nutrition",
        description="Nutrition facts (calories, protein, fat, carbohydrates, fibre, sugar, sodium) of an "
                    "amount of a single ingredient, given by weight, volume or number of pieces.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "ingredient": {"type": "string", "minLength": 1, "description": "Ingredient, e.g. 'avocado', 'olive oil'."},
            "amount": {"type": "number", "exclusiveMinimum": 0, "default": 100, "description": "How much."},
            "unit": {"type": "string", "enum": AMOUNT_UNITS, "default": "g",
                     "description": "Unit of the amount (cup = 240 ml, tbsp = 15 ml, tsp = 5 ml)."},
        }, "required": ["ingredient"]},
        returns="{ingredient, amount, unit, grams, calories_kcal, protein_g, fat_g, carbs_g, fiber_g, sugar_g, "
                "sodium_mg, tags}",
        examples=({"arguments": {"ingredient": "banana", "amount": 2, "unit": "piece"}},),
    ), ingredient_nutrition),
    Tool(ToolSpec(
        name="recipe_nutrition",
        description="Nutrition facts of a recipe per serving (default) or for the whole dish, computed from "
                    "its ingredients.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1, "description": "Recipe name (or a unique part of it)."},
            "per": {"type": "string", "enum": ["serving", "total"], "default": "serving",
                    "description": "One serving or the whole recipe."},
        }, "required": ["name"]},
        returns="{name, per, servings, weight_g, calories_kcal, protein_g, fat_g, carbs_g, fiber_g, sugar_g, "
                "sodium_mg, calories_from_fat_percent}",
        examples=({"arguments": {"name": "Hummus"}},),
    ), recipe_nutrition),
    Tool(ToolSpec(
        name="suggest_substitutions",
        description="Suggest substitutes for a cooking ingredient with the replacement ratio and a usage "
                    "note, optionally only those that fit a diet, and the replacement quantity for an amount.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "ingredient": {"type": "string", "minLength": 1, "description": "Ingredient to replace."},
            "diet": DIET,
            "amount": {"type": "number", "exclusiveMinimum": 0,
                       "description": "Amount of the original ingredient, to compute each replacement amount."},
            "unit": {"type": "string", "default": "g", "description": "Unit of amount (carried over to the result)."},
        }, "required": ["ingredient"]},
        returns="{ingredient, diet, substitutes: [{substitute, ratio, note, tags, amount?, unit?}]}",
        examples=({"arguments": {"ingredient": "lemon juice"}},),
    ), suggest_substitutions),
]
