"""The statistics, text, catalogue, recipes and flights suites: meaningful errors, and the SQLite catalogue.

Calls go through the real runner (schema validation, defaults, limits), as a model's calls do.
"""
import json
import threading
from importlib import resources

import pytest

from toolenv.observation import ErrorKind
from toolenv.registry import builtin_registry
from toolenv.runner import ToolRunner
from toolenv.suites import catalogue, flights, recipes, statistics, text

PART2 = [tool for module in (statistics, text, catalogue, recipes, flights) for tool in module.TOOLS]


@pytest.fixture(scope="module")
def runner():
    return ToolRunner(builtin_registry())


def tool_error(runner, name, arguments):
    observation = runner.call(name, arguments)
    assert not observation.ok and observation.error == ErrorKind.TOOL_ERROR, observation
    return observation.message


def test_twenty_five_tools_spread_over_five_categories_and_four_rounds():
    assert len(PART2) == 25
    assert {tool.spec.category for tool in PART2} == {"Statistics", "Text", "Catalogue", "Food", "Travel"}
    per_round = [sum(tool.spec.round == r for tool in PART2) for r in (1, 2, 3, 4)]
    assert sorted(per_round) == [6, 6, 6, 7]
    assert all(tool.spec.suite == "builtin" for tool in PART2)


@pytest.mark.parametrize("tool", PART2, ids=lambda tool: tool.name)
def test_every_example_runs(runner, tool):
    for example in tool.spec.examples:
        observation = runner.call(tool.name, example["arguments"])
        assert observation.ok, observation.message


# ---- meaningful errors ------------------------------------------------------------------------


@pytest.mark.parametrize("name, arguments, expected", [
    ("describe_numbers", {"numbers": [4.2]}, "at least 2 values"),
    ("describe_numbers", {"numbers": [1, 2, 3], "percentiles": [150]}, "between 0 and 100"),
    ("fit_linear_regression", {"x": [1, 2, 3], "y": [1, 2]}, "same length"),
    ("fit_linear_regression", {"x": [2, 2, 2], "y": [1, 2, 3]}, "slope is undefined"),
    ("compute_correlation", {"x": [1, 2, 3], "y": [5, 5, 5]}, "constant"),
    ("normal_probability", {"value": 1, "tail": "between"}, "upper_value"),
    ("count_combinations", {"n": 3, "k": 5}, "repetition"),
    ("analyze_text", {"text": "... !!! ???"}, "no words"),
    ("word_frequencies", {"text": "the and of it"}, "no words left"),
])
def test_math_and_text_errors_explain_what_to_change(runner, name, arguments, expected):
    assert expected in tool_error(runner, name, arguments)


def test_an_unknown_title_suggests_close_ones(runner):
    message = tool_error(runner, "get_title_details", {"title": "The Shinning"})
    assert "Did you mean" in message and "The Shining" in message


def test_a_title_shared_by_a_book_and_a_film_asks_for_the_kind(runner):
    message = tool_error(runner, "get_title_details", {"title": "Dune"})
    assert "kind" in message and "Frank Herbert" in message and "Denis Villeneuve" in message
    film = runner.call("get_title_details", {"title": "Dune", "kind": "film"})
    assert film.ok and film.result["director"] == "Denis Villeneuve"


@pytest.mark.parametrize("name, arguments, expected", [
    ("get_recipe", {"name": "Spagetti Carbonara"}, "Did you mean"),
    ("ingredient_nutrition", {"ingredient": "olive oil", "unit": "piece"}, "not counted in pieces"),
    ("ingredient_nutrition", {"ingredient": "salmon", "amount": 1, "unit": "cup"}, "not measured by volume"),
    ("suggest_substitutions", {"ingredient": "salt"}, "no substitutions known"),
    ("search_recipes", {"cuisine": "Martian"}, "unknown cuisine"),
])
def test_recipe_errors(runner, name, arguments, expected):
    assert expected in tool_error(runner, name, arguments)


@pytest.mark.parametrize("name, arguments, expected", [
    ("search_flights", {"origin": "LHX", "destination": "JFK", "date": "2025-05-14"}, "unknown airport"),
    ("search_flights", {"origin": "LHR", "destination": "JFK", "date": "14/05/2025"}, "YYYY-MM-DD"),
    ("get_airport_info", {"airport": "London"}, "LHR, LGW, STN"),
    ("get_flight_details", {"flight_number": "BA1170"}, "Did you mean"),
    ("list_airline_routes", {"airline": "Lufthanza"}, "Did you mean: Lufthansa"),
    ("find_cheapest_connection", {"origin": "BOS", "destination": "DEL", "date": "2025-05-05"}, "no itinerary"),
])
def test_flight_errors(runner, name, arguments, expected):
    assert expected in tool_error(runner, name, arguments)


# ---- flights: time zones and connections ------------------------------------------------------


def test_arrival_crosses_the_date_line_in_local_time(runner):
    # UA837 SFO 11:05 (UTC-8) + 645 min lands 14:50 next day in Tokyo (UTC+9)
    leg = runner.call("search_flights", {"origin": "SFO", "destination": "NRT", "date": "2025-09-03"}).result["flights"][0]
    assert (leg["departure"], leg["arrival"], leg["arrival_day_offset"]) == ("2025-09-03T11:05", "2025-09-04T14:50", 1)


def test_cheapest_connection_respects_the_layover_bounds(runner):
    arguments = {"origin": "MAN", "destination": "JFK", "date": "2025-04-07"}
    for bounds in ({}, {"min_layover_minutes": 150}, {"max_layover_minutes": 100}):
        result = runner.call("find_cheapest_connection", {**arguments, **bounds}).result
        low, high = bounds.get("min_layover_minutes", 60), bounds.get("max_layover_minutes", 720)
        assert result["stops"] == 1 and low <= result["layover_minutes"] <= high
        assert result["legs"][0]["destination"] == result["legs"][1]["origin"] == result["via"]


# ---- the SQLite catalogue ---------------------------------------------------------------------


def test_the_database_holds_exactly_the_bundled_json():
    data = json.loads(resources.files("toolenv").joinpath("data/catalogue.json").read_text(encoding="utf-8"))
    db = catalogue._db()
    assert db.execute("SELECT COUNT(*) FROM books").fetchone()[0] == len(data["books"]) >= 80
    assert db.execute("SELECT COUNT(*) FROM films").fetchone()[0] == len(data["films"]) >= 80
    genres = sum(len(book["genres"]) for book in data["books"])
    assert db.execute("SELECT COUNT(*) FROM book_genres").fetchone()[0] == genres


def test_search_filters_combine_and_count_all_matches(runner):
    result = runner.call("search_films", {"genre": "science fiction", "year_from": 1980, "year_to": 1989, "limit": 2}).result
    assert result["total_matches"] > 2 == len(result["films"])
    assert all("science fiction" in film["genres"] and 1980 <= film["year"] <= 1989 for film in result["films"])
    ratings = [film["rating"] for film in result["films"]]
    assert ratings == sorted(ratings, reverse=True)


def test_user_text_is_bound_as_sql_parameters_not_spliced(runner):
    hostile = runner.call("search_books", {"title": "x' OR '1'='1"})
    assert hostile.ok and hostile.result["total_matches"] == 0


def test_the_shared_connection_serves_worker_threads():
    results, errors = [], []

    def worker():
        try:
            results.append(catalogue.search_books(sort_by="rating", limit=3, genre="classic")["total_matches"])
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1 and len(results) == 8


def test_recommendations_share_a_genre_and_exclude_the_source(runner):
    result = runner.call("recommend_similar", {"title": "Frankenstein", "limit": 10}).result
    titles = [item["title"] for item in result["recommendations"]]
    assert "Frankenstein" not in titles and all(item["shared_genres"] >= 1 for item in result["recommendations"])
    shared = [item["shared_genres"] for item in result["recommendations"]]
    assert shared == sorted(shared, reverse=True)


# ---- recipes: derived diets and scaling ----------------------------------------------------------


def test_diet_tags_follow_from_the_ingredients(runner):
    carbonara = runner.call("get_recipe", {"name": "Spaghetti Carbonara"}).result
    assert "vegetarian" not in carbonara["diets"] and "gluten-free" not in carbonara["diets"]
    animal = {"meat", "fish", "dairy", "egg", "honey"}
    vegan = runner.call("search_recipes", {"diet": "vegan", "limit": 50}).result["recipes"]
    assert vegan
    for recipe in vegan:
        items = runner.call("get_recipe", {"name": recipe["name"]}).result["ingredients"]
        assert not any(animal & set(recipes._nutrition()[i["item"]]["tags"]) for i in items), recipe["name"]


def test_scaling_servings_scales_every_quantity_and_nutrition_per_serving_does_not_change(runner):
    base = runner.call("get_recipe", {"name": "Moussaka"}).result
    double = runner.call("get_recipe", {"name": "Moussaka", "servings": base["servings"] * 2}).result
    assert [i["quantity"] * 2 for i in base["ingredients"]] == pytest.approx([i["quantity"] for i in double["ingredients"]])
    serving = runner.call("recipe_nutrition", {"name": "Moussaka"}).result
    total = runner.call("recipe_nutrition", {"name": "Moussaka", "per": "total"}).result
    assert total["calories_kcal"] == pytest.approx(serving["calories_kcal"] * base["servings"], abs=1)


def test_every_recipe_ingredient_has_nutrition_facts():
    data = json.loads(resources.files("toolenv").joinpath("data/recipes.json").read_text(encoding="utf-8"))
    table = recipes._nutrition()
    missing = {i["item"] for r in data["recipes"] for i in r["ingredients"] if i["item"] not in table}
    assert not missing
    assert len(data["recipes"]) >= 40 and len(table) >= 80
