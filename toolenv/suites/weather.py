"""Weather: a daily weather archive for 2023 for every city of the geography suite.

The records are synthetic but plausible: each city's climate normals (data/climate.csv: January and July
mean temperature, yearly precipitation and its wet season) shape the seasons, and weather noise drawn from
SHA-256 of (city, day) makes the days, so every machine and Python version computes the same history
(Python's own hash() is salted per process and never used). Values are rounded when generated.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from toolenv.spec import Tool, ToolError, ToolSpec
from toolenv.suites.geography import CITY_PARAM, City, resolve_city

CATEGORY = "Weather"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
YEAR = 2023
FIRST_DAY, LAST_DAY = dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31)


def _uniforms(key: str) -> tuple[float, ...]:
    """Eight floats in [0, 1) from SHA-256 of key: a portable, seed-stable source of randomness."""
    return tuple(x / 2**32 for x in struct.unpack(">8I", hashlib.sha256(key.encode("utf-8")).digest()))


def _round(x: float, digits: int = 1) -> float:
    return round(x, digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def _condition(precip: float, snow: float, cloud: float) -> str:
    if snow > 0:
        return "snow"
    if precip >= 10:
        return "heavy rain"
    if precip >= 1:
        return "rain"
    if precip > 0:
        return "drizzle"
    return "sunny" if cloud < 0.4 else "partly cloudy" if cloud < 0.75 else "cloudy"


@dataclass(frozen=True)
class Climate:
    """Climate normals of a city: mean temperature of January and July, yearly precipitation and its season."""

    jan_mean_c: float
    jul_mean_c: float
    precip_mm: float
    wettest_month: int
    seasonality: float  # 0: rain spread evenly over the year .. 1: all of it in the wet season


@lru_cache(maxsize=1)
def _climates() -> dict[tuple[str, str], Climate]:
    with open(DATA_DIR / "climate.csv", encoding="utf-8", newline="") as f:
        return {
            (r["name"], r["country_code"]): Climate(float(r["jan_mean_c"]), float(r["jul_mean_c"]), float(r["precip_mm"]),
                                                    int(r["wettest_month"]), float(r["seasonality"]))
            for r in csv.DictReader(f)
        }


@lru_cache(maxsize=256)
def _history(city: City) -> tuple[dict, ...]:
    """All 365 daily records of one city, in metric units."""
    key = f"{city.name}|{city.country_code}"
    normals = _climates()[(city.name, city.country_code)]
    windiness, *phases = _uniforms(key)
    # Seasonal mean: a cosine through the January and July normals (mid-month, day 14 and day 196).
    middle, half_swing = (normals.jan_mean_c + normals.jul_mean_c) / 2, (normals.jul_mean_c - normals.jan_mean_c) / 2
    variability = 0.3 + 0.7 * min(1.0, abs(city.latitude) / 45)  # day-to-day swings grow away from the equator
    wet_day_mm = min(20.0, max(3.0, 2 + normals.precip_mm / 200))  # mean amount on a wet day
    aridity = 1 - min(1.0, normals.precip_mm / 1000)  # dry climates have wider day-night ranges
    # Each day's share of the yearly precipitation: a bump (von Mises) centred mid wettest_month, mean 1.
    bump = [math.exp(3 * normals.seasonality * math.cos(2 * math.pi * ((n + 0.5) / 365 * 12 - normals.wettest_month + 0.5) / 12))
            for n in range(365)]
    shares = [b * 365 / sum(bump) for b in bump]
    records = []
    for n in range(365):
        day = FIRST_DAY + dt.timedelta(n)
        u = _uniforms(f"{key}|{day.isoformat()}")
        season = middle - half_swing * math.cos(2 * math.pi * (n - 14) / 365)
        # Spells of warm/cold weather lasting days: a few slow waves with city-specific phases, plus daily noise.
        spell = sum(1.6 * math.sin(2 * math.pi * (n / period + phase)) for period, phase in zip((6.3, 11.7, 23.9), phases))
        mean = season + variability * (spell + 3 * (u[0] - 0.5))
        expected_mm = normals.precip_mm / 365 * shares[n]
        rain_chance = min(0.95, expected_mm / wet_day_mm)  # in the wettest weeks, fewer dry days and heavier rain
        precip = round(-math.log(1 - u[2]) * expected_mm / rain_chance, 1) if u[1] < rain_chance else 0.0
        half_range = (3.5 + 3 * u[3] + 3 * aridity) * (0.6 if precip >= 1 else 1.0)
        snow = precip if precip > 0 and mean <= 0.5 else 0.0  # 1 mm of water falls as about 1 cm of snow
        records.append({
            "date": day.isoformat(),
            "temp_max_c": _round(mean + half_range), "temp_min_c": _round(mean - half_range), "temp_mean_c": _round(mean),
            "precipitation_mm": precip, "snowfall_cm": snow,
            "humidity_pct": round(min(100.0, 70 - 35 * aridity + (20 if precip else 0) + 15 * (u[4] - 0.5))),
            "wind_speed_kmh": _round(6 + 18 * windiness + 14 * u[5]),
            "condition": _condition(precip, snow, u[6] if not precip else 1.0),
        })
    return tuple(records)


def _imperial(record: dict) -> dict:
    converted = dict(record)
    for field in ("temp_max", "temp_min", "temp_mean"):
        converted[f"{field}_f"] = _round(converted.pop(f"{field}_c") * 9 / 5 + 32)
    converted["precipitation_in"] = round(converted.pop("precipitation_mm") / 25.4, 2)
    converted["snowfall_in"] = round(converted.pop("snowfall_cm") / 2.54, 1)
    converted["wind_speed_mph"] = round(converted.pop("wind_speed_kmh") / 1.609344, 1)
    return converted


def _day(text: str, field: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(f"{field} '{text}' is not a valid YYYY-MM-DD date.") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ToolError(f"The weather archive covers {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}; {day.isoformat()} is outside it.")
    return day


def _span(city: City, start_date: str, end_date: str) -> list[dict]:
    start, end = _day(start_date, "start_date"), _day(end_date, "end_date")
    if end < start:
        raise ToolError(f"end_date {end.isoformat()} is before start_date {start.isoformat()}.")
    return list(_history(city)[start.timetuple().tm_yday - 1:end.timetuple().tm_yday])


def _label(city: City) -> str:
    return f"{city.name}, {city.country}"


def get_daily_weather(city: str, date: str, units: str = "metric") -> dict:
    place = resolve_city(city)
    record = _history(place)[_day(date, "date").timetuple().tm_yday - 1]
    return {"city": _label(place), "units": units, **(_imperial(record) if units == "imperial" else record)}


def _summary(days: list[dict]) -> dict:
    return {
        "mean_temp_c": _round(sum(d["temp_mean_c"] for d in days) / len(days)),
        "max_temp_c": max(d["temp_max_c"] for d in days), "min_temp_c": min(d["temp_min_c"] for d in days),
        "total_precipitation_mm": round(sum(d["precipitation_mm"] for d in days), 1),
        "rainy_days": sum(d["precipitation_mm"] >= 1 for d in days),
    }


def _summary_in(units: str, summary: dict) -> dict:
    if units == "metric":
        return summary
    return {
        "mean_temp_f": _round(summary["mean_temp_c"] * 9 / 5 + 32), "max_temp_f": _round(summary["max_temp_c"] * 9 / 5 + 32),
        "min_temp_f": _round(summary["min_temp_c"] * 9 / 5 + 32),
        "total_precipitation_in": round(summary["total_precipitation_mm"] / 25.4, 2), "rainy_days": summary["rainy_days"],
    }


def get_monthly_weather_summary(city: str, month: int, units: str = "metric") -> dict:
    place = resolve_city(city)
    days = [d for d in _history(place) if int(d["date"][5:7]) == month]
    return {"city": _label(place), "year": YEAR, "month": month, "units": units, **_summary_in(units, _summary(days)),
            "sunny_days": sum(d["condition"] == "sunny" for d in days), "snow_days": sum(d["snowfall_cm"] > 0 for d in days)}


EXTREMES = {
    "hottest": ("temp_max_c", max), "coldest": ("temp_min_c", min),
    "wettest": ("precipitation_mm", max), "windiest": ("wind_speed_kmh", max),
}


def find_weather_extreme(city: str, start_date: str, end_date: str, extreme: str = "hottest", units: str = "metric") -> dict:
    place = resolve_city(city)
    field, pick = EXTREMES[extreme]
    days = _span(place, start_date, end_date)
    best = pick(days, key=lambda d: d[field])  # ties: the earliest day wins
    return {"city": _label(place), "extreme": extreme, "date": best["date"],
            "record": _imperial(best) if units == "imperial" else dict(best)}


CONDITIONS = {
    "rain": lambda d: d["precipitation_mm"] >= 1, "snow": lambda d: d["snowfall_cm"] > 0,
    "frost": lambda d: d["temp_min_c"] < 0, "hot": lambda d: d["temp_max_c"] >= 30,
    "sunny": lambda d: d["condition"] == "sunny", "dry": lambda d: d["precipitation_mm"] == 0,
}


def count_weather_days(city: str, condition: str, start_date: str = "2023-01-01", end_date: str = "2023-12-31") -> dict:
    place = resolve_city(city)
    days = _span(place, start_date, end_date)
    matching = [d["date"] for d in days if CONDITIONS[condition](d)]
    return {"city": _label(place), "condition": condition, "start_date": days[0]["date"], "end_date": days[-1]["date"],
            "total_days": len(days), "matching_days": len(matching), "percent": round(100 * len(matching) / len(days), 1),
            "first_date": matching[0] if matching else None, "last_date": matching[-1] if matching else None}


def compare_city_weather(city_a: str, city_b: str, start_date: str, end_date: str, units: str = "metric") -> dict:
    a, b = resolve_city(city_a), resolve_city(city_b)
    if a == b:
        raise ToolError("city_a and city_b are the same city; give two different cities.")
    sa, sb = _summary(_span(a, start_date, end_date)), _summary(_span(b, start_date, end_date))

    def higher(field: str) -> str | None:
        """The city with the larger value of field; None on a tie."""
        return _label(a) if sa[field] > sb[field] else _label(b) if sb[field] > sa[field] else None

    diff = sa["mean_temp_c"] - sb["mean_temp_c"]
    return {
        "start_date": start_date.strip(), "end_date": end_date.strip(), "units": units,
        "city_a": {"city": _label(a), **_summary_in(units, sa)}, "city_b": {"city": _label(b), **_summary_in(units, sb)},
        "warmer_city": higher("mean_temp_c"), "wetter_city": higher("total_precipitation_mm"),
        "mean_temp_difference": _round(diff if units == "metric" else diff * 9 / 5),
    }


UNITS = {"type": "string", "enum": ["metric", "imperial"], "default": "metric",
         "description": "metric: °C, mm, cm, km/h; imperial: °F, inches, mph."}
START = {"type": "string", "format": "date", "description": "First day of the period, YYYY-MM-DD in 2023 (included)."}
END = {"type": "string", "format": "date", "description": "Last day of the period, YYYY-MM-DD in 2023 (included)."}

TOOLS = [
    Tool(ToolSpec(
        name="get_daily_weather",
        description="Observed weather of one day in 2023 for a world city: max/min/mean temperature, precipitation, "
                    "snowfall, humidity, wind speed and the overall condition.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "city": CITY_PARAM,
            "date": {"type": "string", "format": "date", "description": "Day in 2023, YYYY-MM-DD."},
            "units": UNITS,
        }, "required": ["city", "date"]},
        returns="{city, units, date, temp_max_c|_f, temp_min_c|_f, temp_mean_c|_f, precipitation_mm|_in, snowfall_cm|_in, "
                "humidity_pct, wind_speed_kmh|_mph, condition (sunny, partly cloudy, cloudy, drizzle, rain, heavy rain, snow)}",
        examples=({"arguments": {"city": "Vienna", "date": "2023-08-09"}},),
    ), get_daily_weather),
    Tool(ToolSpec(
        name="get_monthly_weather_summary",
        description="Summary of one month of 2023 for a city: mean temperature, highest maximum and lowest minimum, "
                    "total precipitation and counts of rainy (>= 1 mm), sunny and snow days.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "city": CITY_PARAM,
            "month": {"type": "integer", "minimum": 1, "maximum": 12, "description": "Month of 2023, 1 = January."},
            "units": UNITS,
        }, "required": ["city", "month"]},
        returns="{city, year, month, units, mean_temp_c|_f, max_temp_c|_f, min_temp_c|_f, total_precipitation_mm|_in, "
                "rainy_days, sunny_days, snow_days}",
        examples=({"arguments": {"city": "Ottawa", "month": 2}},),
    ), get_monthly_weather_summary),
    Tool(ToolSpec(
        name="find_weather_extreme",
        description="Find the hottest (highest maximum), coldest (lowest minimum), wettest (most precipitation) or "
                    "windiest day for a city within a period of 2023; ties go to the earliest day.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "city": CITY_PARAM, "start_date": START, "end_date": END,
            "extreme": {"type": "string", "enum": list(EXTREMES), "default": "hottest", "description": "Which extreme to find."},
            "units": UNITS,
        }, "required": ["city", "start_date", "end_date"]},
        returns="{city, extreme, date, record: the full daily record of that day}",
        examples=({"arguments": {"city": "Cairo", "start_date": "2023-05-01", "end_date": "2023-05-31"}},),
    ), find_weather_extreme),
    Tool(ToolSpec(
        name="count_weather_days",
        description="Count the days of 2023 (or of a period within it) on which a city had a given kind of weather: "
                    "rain (>= 1 mm), snow, frost (minimum below 0 °C), hot (maximum >= 30 °C), sunny, or dry (no precipitation).",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "city": CITY_PARAM,
            "condition": {"type": "string", "enum": list(CONDITIONS), "description": "The kind of day to count."},
            "start_date": {**START, "default": "2023-01-01"}, "end_date": {**END, "default": "2023-12-31"},
        }, "required": ["city", "condition"]},
        returns="{city, condition, start_date, end_date, total_days, matching_days, percent, first_date, last_date}",
        examples=({"arguments": {"city": "Glasgow", "condition": "dry", "start_date": "2023-10-01", "end_date": "2023-10-31"}},),
    ), count_weather_days),
    Tool(ToolSpec(
        name="compare_city_weather",
        description="Compare the weather of two cities over the same period of 2023: mean, highest and lowest "
                    "temperature, total precipitation and rainy days for each, which was warmer and which wetter.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "city_a": CITY_PARAM, "city_b": CITY_PARAM, "start_date": START, "end_date": END, "units": UNITS,
        }, "required": ["city_a", "city_b", "start_date", "end_date"]},
        returns="{start_date, end_date, units, city_a: {city, mean_temp, max_temp, min_temp, total_precipitation, rainy_days}, "
                "city_b: {...}, warmer_city, wetter_city, mean_temp_difference (a minus b, in the chosen unit)}",
        examples=({"arguments": {"city_a": "Madrid", "city_b": "Lisbon", "start_date": "2023-04-01", "end_date": "2023-04-30"}},),
    ), compare_city_weather),
]
