"""Units: conversion between units of ten physical dimensions, parsing of compound quantities
("5 ft 3 in", "2 lb 4 oz", "1h 30min"), cooking measures (cups <-> grams per ingredient) and fuel economy.

Conversion factors (to each dimension's base unit), unit aliases and ingredient densities live in
data/units.json; temperature is affine and handled in code.
"""
from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Units"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
# Temperature to and from kelvin.
TO_KELVIN = {"C": lambda t: t + 273.15, "F": lambda t: (t - 32) * 5 / 9 + 273.15, "K": lambda t: t, "R": lambda t: t * 5 / 9}
FROM_KELVIN = {"C": lambda k: k - 273.15, "F": lambda k: (k - 273.15) * 9 / 5 + 32, "K": lambda k: k, "R": lambda k: k * 9 / 5}
COOKING_MEASURES = ["tsp", "tbsp", "fl_oz", "cup", "pt", "qt", "ml", "l", "g", "kg", "oz", "lb"]
# Fuel economy: each unit's value for a car using exactly 1 litre per 100 km (l_per_100km is the inverse kind).
FUEL = {"l_per_100km": 1.0, "km_per_l": 100.0, "mpg_us": 100 / 1.609344 * 3.785411784, "mpg_imp": 100 / 1.609344 * 4.54609}
QUANTITY = re.compile(r"(\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)?)\s*([^\d\s,]+)")


@lru_cache(maxsize=1)
def _data() -> dict:
    with open(DATA_DIR / "units.json", encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=1)
def _unit_index() -> dict[str, tuple[str, dict]]:
    """Unit id -> (dimension, unit entry)."""
    return {u: (dim, entry) for dim, spec in _data()["dimensions"].items() for u, entry in spec["units"].items()}


ALL_UNITS = list(_unit_index())


def _convert(value: float, from_unit: str, to_unit: str) -> tuple[float, str]:
    (dim_from, entry_from), (dim_to, entry_to) = _unit_index()[from_unit], _unit_index()[to_unit]
    if dim_from != dim_to:
        raise ToolError(f"Cannot convert {dim_from} ({from_unit}) to {dim_to} ({to_unit}); "
                        f"both units must measure the same dimension.")
    if dim_from == "temperature":
        kelvin = TO_KELVIN[from_unit](value)
        if kelvin < -1e-9:
            raise ToolError(f"{value} {from_unit} is below absolute zero.")
        return FROM_KELVIN[to_unit](kelvin), dim_from
    return value * entry_from["to_base"] / entry_to["to_base"], dim_from


def convert_units(value: float, from_unit: str, to_unit: str, decimals: int = 4) -> dict:
    result, dimension = _convert(value, from_unit, to_unit)
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "dimension": dimension,
            "result": round(result, decimals)}


def _unit_from_token(token: str) -> str:
    index, aliases = _unit_index(), _data()["aliases"]
    if token in index:
        return token
    if token.casefold() in aliases:
        return aliases[token.casefold()]
    folded = [u for u in index if u.casefold() == token.casefold()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(token.casefold(), list(aliases) + [u.casefold() for u in index], n=3, cutoff=0.7)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ToolError(f"Unknown unit '{token}'.{hint}")


def _number(text: str) -> float:
    numerator, _, denominator = text.partition("/")
    if denominator and float(denominator) == 0:
        raise ToolError(f"Division by zero in '{text}'.")
    return float(numerator) / float(denominator) if denominator else float(numerator)


def parse_quantity(text: str, to_unit: str, decimals: int = 4) -> dict:
    matches = list(QUANTITY.finditer(text))
    leftover = QUANTITY.sub(" ", text).replace(",", " ").split()
    if not matches or any(word.casefold() not in {"and", "+", "plus"} for word in leftover):
        raise ToolError(f"Could not read '{text}' as numbers followed by units, e.g. '5 ft 3 in' or '2 lb 4 oz'.")
    parts = [{"value": _number(m.group(1)), "unit": _unit_from_token(m.group(2))} for m in matches]
    dimensions = {_unit_index()[p["unit"]][0] for p in parts}
    if len(dimensions) > 1:
        raise ToolError(f"'{text}' mixes dimensions ({', '.join(sorted(dimensions))}); all parts must measure the same thing.")
    if "temperature" in dimensions and len(parts) > 1:
        raise ToolError("Temperatures cannot be added together; give a single temperature.")
    total = sum(_convert(p["value"], p["unit"], to_unit)[0] for p in parts)
    return {"text": text, "parts": parts, "dimension": dimensions.pop(), "to_unit": to_unit, "result": round(total, decimals)}


def list_units(dimension: str, system: str = "all") -> dict:
    spec = _data()["dimensions"][dimension]
    units = [
        {"id": u, "name": e["name"], "system": e["system"], "to_base": e["to_base"]}
        for u, e in spec["units"].items() if system == "all" or e["system"] == system
    ]
    return {"dimension": dimension, "base_unit": spec["base"], "count": len(units), "units": units}


def convert_cooking_measure(amount: float, from_measure: str, to_measure: str,
                            ingredient: str | None = None, decimals: int = 2) -> dict:
    kinds = {_unit_index()[from_measure][0], _unit_index()[to_measure][0]}
    if len(kinds) == 1:
        result, _ = _convert(amount, from_measure, to_measure)
    else:
        if ingredient is None:
            raise ToolError(f"Converting between volume and weight ({from_measure} -> {to_measure}) needs an "
                            f"ingredient, because a cup of flour and a cup of honey weigh differently.")
        grams_per_ml = _data()["cooking"]["grams_per_cup"][ingredient] / (_unit_index()["cup"][1]["to_base"] * 1000)
        if _unit_index()[from_measure][0] == "volume":
            result = _convert(amount, from_measure, "ml")[0] * grams_per_ml
            result = _convert(result, "g", to_measure)[0]
        else:
            result = _convert(amount, from_measure, "g")[0] / grams_per_ml
            result = _convert(result, "ml", to_measure)[0]
    return {"amount": amount, "from_measure": from_measure, "to_measure": to_measure,
            "ingredient": ingredient, "result": round(result, decimals)}


def convert_fuel_economy(value: float, from_unit: str, to_unit: str, decimals: int = 2) -> dict:
    # Work in "distance per volume" space; l_per_100km is its reciprocal.
    as_km_per_l = 100 / value if from_unit == "l_per_100km" else value / FUEL[from_unit] * 100
    result = 100 / as_km_per_l if to_unit == "l_per_100km" else as_km_per_l / 100 * FUEL[to_unit]
    return {"value": value, "from_unit": from_unit, "to_unit": to_unit, "result": round(result, decimals)}


UNIT_ENUM = {"type": "string", "enum": ALL_UNITS}
DECIMALS = {"type": "integer", "minimum": 0, "maximum": 10, "default": 4, "description": "Decimal places of the result."}
UNIT_HELP = ("Unit ids: length mm cm m km in ft yd mi nmi; mass mg g kg t oz lb st short_ton long_ton; temperature C F K R; "
             "volume ml l m3 tsp tbsp fl_oz cup pt qt gal (US) imp_pt imp_gal ft3; speed m_s km_h mph kn ft_s; "
             "area cm2 m2 ha km2 in2 ft2 yd2 acre mi2; data bit B kB MB GB TB KiB MiB GiB TiB; "
             "time ms s min h day week year; pressure Pa kPa bar atm psi mmHg; energy J kJ cal kcal Wh kWh BTU.")

TOOLS = [
    Tool(ToolSpec(
        name="convert_units",
        description="Convert a value between two units of the same dimension (length, mass, temperature, volume, "
                    "speed, area, data size, time, pressure, energy). " + UNIT_HELP,
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "value": {"type": "number", "description": "The quantity to convert."},
            "from_unit": {**UNIT_ENUM, "description": "Unit id of the value (see the list above)."},
            "to_unit": {**UNIT_ENUM, "description": "Unit id to convert to; same dimension as from_unit."},
            "decimals": DECIMALS,
        }, "required": ["value", "from_unit", "to_unit"]},
        returns="{value, from_unit, to_unit, dimension, result}",
        examples=({"arguments": {"value": 3, "from_unit": "yd", "to_unit": "cm"}},
                  {"arguments": {"value": 250, "from_unit": "K", "to_unit": "C", "decimals": 1}}),
    ), convert_units),
    Tool(ToolSpec(
        name="parse_quantity",
        description="Read a quantity written as text, possibly in several parts such as \"5 ft 3 in\", \"5'11\\\"\", "
                    "\"2 lb 4 oz\", \"1h 30min\" or \"3/4 cup\", and express the total in one unit. "
                    "Unit words and abbreviations (feet, lbs, hours, litres...) are understood. " + UNIT_HELP,
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "text": {"type": "string", "description": "The quantity text: numbers each followed by a unit."},
            "to_unit": {**UNIT_ENUM, "description": "Unit id for the total."},
            "decimals": DECIMALS,
        }, "required": ["text", "to_unit"]},
        returns="{text, parts: [{value, unit}], dimension, to_unit, result}",
        examples=({"arguments": {"text": "3 st 2 lb", "to_unit": "kg"}},),
    ), parse_quantity),
    Tool(ToolSpec(
        name="list_units",
        description="List the units available for one dimension, with their ids (to use in conversions), names, "
                    "measurement system and size in the dimension's base unit.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "dimension": {"type": "string", "enum": list(_data()["dimensions"]), "description": "The physical dimension."},
            "system": {"type": "string", "enum": ["all", "metric", "imperial", "binary", "other"], "default": "all",
                       "description": "Only units of this system ('imperial' includes US customary; 'binary' is for data sizes)."},
        }, "required": ["dimension"]},
        returns="{dimension, base_unit, count, units: [{id, name, system, to_base (how many base units one unit is; null for temperature)}]}",
        examples=({"arguments": {"dimension": "length", "system": "metric"}},),
    ), list_units),
    Tool(ToolSpec(
        name="convert_cooking_measure",
        description="Convert kitchen measures: between volumes (teaspoons, tablespoons, cups, ml...), between weights "
                    "(g, oz, lb...), or between volume and weight for a given ingredient (e.g. cups of flour to grams). "
                    "Cups, spoons, fl_oz, pints and quarts are US measures.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "amount": {"type": "number", "exclusiveMinimum": 0, "description": "How much of the ingredient."},
            "from_measure": {"type": "string", "enum": COOKING_MEASURES, "description": "Measure of the amount."},
            "to_measure": {"type": "string", "enum": COOKING_MEASURES, "description": "Measure to convert to."},
            "ingredient": {"type": "string", "enum": sorted(k for k in _data()["cooking"]["grams_per_cup"]),
                           "description": "Ingredient; needed only to convert between volume and weight."},
            "decimals": {**DECIMALS, "default": 2},
        }, "required": ["amount", "from_measure", "to_measure"]},
        returns="{amount, from_measure, to_measure, ingredient, result}",
        examples=({"arguments": {"amount": 3, "from_measure": "tbsp", "to_measure": "ml"}},
                  {"arguments": {"amount": 100, "from_measure": "g", "to_measure": "cup", "ingredient": "rolled oats"}}),
    ), convert_cooking_measure),
    Tool(ToolSpec(
        name="convert_fuel_economy",
        description="Convert vehicle fuel economy between litres per 100 km, kilometres per litre, US miles per "
                    "gallon and imperial (UK) miles per gallon. Note l_per_100km goes down as the others go up.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "value": {"type": "number", "exclusiveMinimum": 0, "description": "Fuel economy figure to convert."},
            "from_unit": {"type": "string", "enum": list(FUEL), "description": "Unit of the value."},
            "to_unit": {"type": "string", "enum": list(FUEL), "description": "Unit to convert to."},
            "decimals": {**DECIMALS, "default": 2},
        }, "required": ["value", "from_unit", "to_unit"]},
        returns="{value, from_unit, to_unit, result}",
        examples=({"arguments": {"value": 12, "from_unit": "km_per_l", "to_unit": "mpg_imp"}},),
    ), convert_fuel_economy),
]
