"""Geography: a bundled table of about 200 world cities (coordinates, time zone, population, elevation).

Cities are named as "City" or, where a name is shared, "City, Country" (country name or ISO code),
e.g. "Valencia, Spain" vs "Valencia, VE". Matching ignores case and accents ("Sao Paulo" finds São Paulo).
The weather suite resolves cities through `resolve_city` too, so both speak about the same places.
"""
from __future__ import annotations

import csv
import difflib
import math
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Geography"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)
KM_PER_UNIT = {"km": 1.0, "mi": 1.609344, "nmi": 1.852}
COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")
COUNTRY_ALIASES = {
    "usa": "US", "america": "US", "united states of america": "US", "the united states": "US",
    "uk": "GB", "britain": "GB", "great britain": "GB", "england": "GB", "scotland": "GB",
    "korea": "KR", "republic of korea": "KR", "uae": "AE", "emirates": "AE", "czech republic": "CZ",
    "holland": "NL", "the netherlands": "NL", "turkiye": "TR", "democratic republic of the congo": "CD",
    "drc": "CD", "russian federation": "RU", "viet nam": "VN",
}


@dataclass(frozen=True)
class City:
    """One row of data/cities.csv."""

    name: str
    country: str
    country_code: str
    latitude: float
    longitude: float
    timezone: str
    population: int
    elevation_m: int
    capital: bool

    def record(self) -> dict:
        return {
            "name": self.name, "country": self.country, "country_code": self.country_code,
            "latitude": self.latitude, "longitude": self.longitude, "timezone": self.timezone,
            "population": self.population, "elevation_m": self.elevation_m, "is_capital": self.capital,
        }


def fold(text: str) -> str:
    """Case- and accent-insensitive key: 'São Paulo ' -> 'sao paulo'."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())


@lru_cache(maxsize=1)
def cities() -> tuple[City, ...]:
    with open(DATA_DIR / "cities.csv", encoding="utf-8", newline="") as f:
        return tuple(
            City(r["name"], r["country"], r["country_code"], float(r["latitude"]), float(r["longitude"]),
                 r["timezone"], int(r["population"]), int(r["elevation_m"]), r["capital"] == "1")
            for r in csv.DictReader(f)
        )


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    """ISO code -> country name, for the countries that have listed cities."""
    return {c.country_code: c.country for c in cities()}


def resolve_country(text: str) -> str:
    """A country name, alias or ISO alpha-2 code -> its ISO code (ToolError with suggestions if unknown)."""
    key = fold(text)
    names = {fold(name): code for code, name in _countries().items()}
    code = key.upper() if key.upper() in _countries() else names.get(key) or COUNTRY_ALIASES.get(key)
    if code is None:
        close = difflib.get_close_matches(key, list(names), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(_countries()[names[c]] for c in close)}?" if close else ""
        raise ToolError(f"Country '{text}' has no cities in the database.{hint}")
    return code


def resolve_city(text: str) -> City:
    """Find one city from "Name" or "Name, Country"; unknown or ambiguous names raise a helpful ToolError."""
    name, _, country = text.partition(",")
    key = fold(name)
    matches = [c for c in cities() if fold(c.name) == key]
    if country.strip():
        code = resolve_country(country.strip())
        matches = [c for c in matches if c.country_code == code]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        options = "; ".join(f"'{c.name}, {c.country}'" for c in matches)
        raise ToolError(f"City name '{text}' is ambiguous; specify the country: {options}.")
    close = difflib.get_close_matches(key, sorted({fold(c.name) for c in cities()}), n=3, cutoff=0.6)
    display = {fold(c.name): c.name for c in cities()}
    hint = f" Did you mean: {', '.join(display[c] for c in close)}?" if close else ""
    raise ToolError(f"City '{text.strip()}' was not found in the database.{hint}")


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def _bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360


def _midpoint(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    p1, p2, l1, dl = math.radians(lat1), math.radians(lat2), math.radians(lon1), math.radians(lon2 - lon1)
    bx, by = math.cos(p2) * math.cos(dl), math.cos(p2) * math.sin(dl)
    lat = math.atan2(math.sin(p1) + math.sin(p2), math.hypot(math.cos(p1) + bx, by))
    lon = l1 + math.atan2(by, math.cos(p1) + bx)
    return math.degrees(lat), (math.degrees(lon) + 540) % 360 - 180


def _nearest(lat: float, lon: float, limit: int, exclude: City | None = None,
             country_code: str | None = None, max_km: float | None = None) -> list[dict]:
    ranked = sorted(
        ((haversine_km(lat, lon, c.latitude, c.longitude), c) for c in cities()
         if c != exclude and (country_code is None or c.country_code == country_code)),
        key=lambda pair: pair[0],
    )
    return [
        {"name": c.name, "country": c.country, "distance_km": round(d, 1)}
        for d, c in ranked if max_km is None or d <= max_km
    ][:limit]


CITY_PARAM = {
    "type": "string",
    "description": "City name, optionally followed by a comma and the country name or ISO code "
                   "to disambiguate (e.g. 'Paris' or 'Valencia, Spain').",
}


def get_city_info(city: str, include_nearest: int = 0) -> dict:
    found = resolve_city(city)
    result = found.record()
    if include_nearest:
        result["nearest_cities"] = _nearest(found.latitude, found.longitude, include_nearest, exclude=found)
    return result


def search_cities(country: str | None = None, min_population: int | None = None,
                  max_population: int | None = None, capitals_only: bool = False,
                  sort_by: str = "population", order: str = "desc", limit: int = 10) -> dict:
    if min_population is not None and max_population is not None and min_population > max_population:
        raise ToolError("min_population must not be greater than max_population.")
    code = resolve_country(country) if country else None
    found = [
        c for c in cities()
        if (code is None or c.country_code == code)
        and (min_population is None or c.population >= min_population)
        and (max_population is None or c.population <= max_population)
        and (not capitals_only or c.capital)
    ]
    key = {"population": lambda c: c.population, "name": lambda c: fold(c.name),
           "latitude": lambda c: c.latitude, "longitude": lambda c: c.longitude,
           "elevation": lambda c: c.elevation_m}[sort_by]
    found.sort(key=key, reverse=order == "desc")
    return {
        "total_matches": len(found),
        "cities": [{"name": c.name, "country": c.country, "population": c.population,
                    "latitude": c.latitude, "longitude": c.longitude, "elevation_m": c.elevation_m}
                   for c in found[:limit]],
    }


def get_city_distance(from_city: str, to_city: str, unit: str = "km") -> dict:
    a, b = resolve_city(from_city), resolve_city(to_city)
    km = haversine_km(a.latitude, a.longitude, b.latitude, b.longitude)
    bearing = _bearing_deg(a.latitude, a.longitude, b.latitude, b.longitude)
    mid_lat, mid_lon = _midpoint(a.latitude, a.longitude, b.latitude, b.longitude)
    return {
        "from": f"{a.name}, {a.country}", "to": f"{b.name}, {b.country}",
        "distance": round(km / KM_PER_UNIT[unit], 1), "unit": unit,
        "initial_bearing_deg": round(bearing, 1), "compass_direction": COMPASS[round(bearing / 22.5) % 16],
        "midpoint": {"latitude": round(mid_lat, 4), "longitude": round(mid_lon, 4)},
    }


def find_nearest_cities(latitude: float, longitude: float, limit: int = 5,
                        max_distance_km: float | None = None, country: str | None = None) -> dict:
    code = resolve_country(country) if country else None
    found = _nearest(latitude, longitude, limit, country_code=code, max_km=max_distance_km)
    return {"count": len(found), "cities": found}


def get_country_summary(country: str, include_cities: bool = False) -> dict:
    code = resolve_country(country)
    members = sorted((c for c in cities() if c.country_code == code), key=lambda c: -c.population)
    result = {
        "country": members[0].country, "country_code": code,
        "capital": next((c.name for c in members if c.capital), None),
        "cities_listed": len(members),
        "total_population": sum(c.population for c in members),
        "largest_city": members[0].name,
        "highest_city": max(members, key=lambda c: c.elevation_m).name,
        "timezones": sorted({c.timezone for c in members}),
    }
    if include_cities:
        result["cities"] = [{"name": c.name, "population": c.population} for c in members]
    return result


TOOLS = [
    Tool(ToolSpec(
        name="get_city_info",
        description="Look up a city in the world cities database: country, ISO country code, coordinates, "
                    "IANA time zone, population, elevation and whether it is the national capital. "
                    "Optionally lists the closest other cities in the database.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "city": CITY_PARAM,
            "include_nearest": {"type": "integer", "minimum": 0, "maximum": 10, "default": 0,
                                "description": "How many of the nearest other database cities to include "
                                               "(with great-circle distances); 0 for none."},
        }, "required": ["city"]},
        returns="{name, country, country_code, latitude, longitude, timezone, population, elevation_m, "
                "is_capital, nearest_cities?: [{name, country, distance_km}]}",
        examples=({"arguments": {"city": "Lyon"}}, {"arguments": {"city": "Perth", "include_nearest": 2}}),
    ), get_city_info),
    Tool(ToolSpec(
        name="search_cities",
        description="Search the world cities database by country, population range and capital status, "
                    "sorted by population, name, latitude, longitude or elevation.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "country": {"type": "string", "description": "Country name or ISO 3166 alpha-2 code; omit for all countries."},
            "min_population": {"type": "integer", "minimum": 0, "description": "Smallest population to include."},
            "max_population": {"type": "integer", "minimum": 0, "description": "Largest population to include."},
            "capitals_only": {"type": "boolean", "default": False, "description": "Only national capitals."},
            "sort_by": {"type": "string", "enum": ["population", "name", "latitude", "longitude", "elevation"],
                        "default": "population", "description": "Field to sort by."},
            "order": {"type": "string", "enum": ["asc", "desc"], "default": "desc", "description": "Sort order."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10,
                      "description": "Maximum number of cities to return."},
        }, "required": []},
        returns="{total_matches: number of cities matching the filters, cities: [{name, country, population, "
                "latitude, longitude, elevation_m}] sorted and truncated to limit}",
        examples=({"arguments": {"country": "Mexico", "limit": 3}},
                  {"arguments": {"min_population": 1000000, "sort_by": "latitude", "order": "asc", "limit": 5}}),
    ), search_cities),
    Tool(ToolSpec(
        name="get_city_distance",
        description="Great-circle (as the crow flies) distance between two cities, with the initial compass "
                    "bearing from the first to the second and the geographic midpoint.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "from_city": {**CITY_PARAM, "description": "Starting city. " + CITY_PARAM["description"]},
            "to_city": {**CITY_PARAM, "description": "Destination city. " + CITY_PARAM["description"]},
            "unit": {"type": "string", "enum": ["km", "mi", "nmi"], "default": "km",
                     "description": "Distance unit: kilometres, statute miles or nautical miles."},
        }, "required": ["from_city", "to_city"]},
        returns="{from, to, distance (rounded to 0.1), unit, initial_bearing_deg, compass_direction, "
                "midpoint: {latitude, longitude}}",
        examples=({"arguments": {"from_city": "Oslo", "to_city": "Athens"}},
                  {"arguments": {"from_city": "Houston", "to_city": "Lima", "unit": "mi"}}),
    ), get_city_distance),
    Tool(ToolSpec(
        name="find_nearest_cities",
        description="Find the database cities closest to a point given by latitude and longitude, "
                    "optionally within a radius and/or within one country.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "latitude": {"type": "number", "minimum": -90, "maximum": 90, "description": "Latitude in decimal degrees (south negative)."},
            "longitude": {"type": "number", "minimum": -180, "maximum": 180, "description": "Longitude in decimal degrees (west negative)."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5, "description": "How many cities to return."},
            "max_distance_km": {"type": "number", "exclusiveMinimum": 0, "description": "Only cities within this many kilometres."},
            "country": {"type": "string", "description": "Only cities in this country (name or ISO code)."},
        }, "required": ["latitude", "longitude"]},
        returns="{count, cities: [{name, country, distance_km}] nearest first}",
        examples=({"arguments": {"latitude": 10.0, "longitude": 10.0}},
                  {"arguments": {"latitude": 45.0, "longitude": -70.0, "limit": 2, "country": "CA"}}),
    ), find_nearest_cities),
    Tool(ToolSpec(
        name="get_country_summary",
        description="Summarise a country from the cities database: capital, number of listed cities, their "
                    "total population, largest and highest city, and the time zones they use.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "country": {"type": "string", "description": "Country name, common alias (e.g. 'UK', 'USA') or ISO 3166 alpha-2 code."},
            "include_cities": {"type": "boolean", "default": False,
                               "description": "Also list the country's cities with their populations, largest first."},
        }, "required": ["country"]},
        returns="{country, country_code, capital, cities_listed, total_population, largest_city, highest_city, "
                "timezones: [IANA names], cities?: [{name, population}]}",
        examples=({"arguments": {"country": "Norway"}}, {"arguments": {"country": "PE", "include_cities": True}}),
    ), get_country_summary),
]
