"""Flight timetables over a bundled schedule (toolenv/data/flights.json).

Times are local to each airport and every airport keeps one fixed UTC offset (no daylight saving), so
arrival times, layovers and durations are exact integer arithmetic and do not depend on a tz database.
"""
from __future__ import annotations

import datetime as dt
import difflib
import json
from functools import lru_cache
from importlib import resources

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Travel"
CABIN_FARE = {"economy": 1.0, "premium_economy": 1.8, "business": 4.0}


@lru_cache(maxsize=1)
def _data() -> dict:
    return json.loads(resources.files("toolenv").joinpath("data/flights.json").read_text(encoding="utf-8"))


def _airports(query: str) -> list[str]:
    """IATA codes for a code, a city or an airport name; unknown names get close-match suggestions."""
    airports = _data()["airports"]
    q = query.strip()
    if q.upper() in airports:
        return [q.upper()]
    hits = [c for c, a in airports.items() if q.casefold() in (a["city"].casefold(), a["name"].casefold())]
    if hits:
        return hits
    names = [a["city"] for a in airports.values()] + list(airports)
    close = difflib.get_close_matches(q, names, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(dict.fromkeys(close))}?" if close else ""
    raise ToolError(f"unknown airport or city '{query}'.{hint}")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ToolError(f"date must be YYYY-MM-DD, got '{value}'") from None


def _utc_minutes(day: dt.date, hhmm: str, airport: str) -> int:
    """Minutes since 0001-01-01 00:00 UTC of a local time at an airport."""
    h, m = map(int, hhmm.split(":"))
    offset = _data()["airports"][airport]["utc_offset_hours"]
    return day.toordinal() * 1440 + h * 60 + m - round(offset * 60)


def _local(utc_minutes: int, airport: str) -> dt.datetime:
    offset = _data()["airports"][airport]["utc_offset_hours"]
    local = utc_minutes + round(offset * 60)
    return dt.datetime.fromordinal(local // 1440) + dt.timedelta(minutes=local % 1440)


def _leg(flight: dict, day: dt.date, cabin: str = "economy") -> dict:
    """A flight on a given departure date, with local and UTC times resolved."""
    depart = _utc_minutes(day, flight["departure"], flight["origin"])
    arrive = depart + flight["duration_minutes"]
    arrival = _local(arrive, flight["destination"])
    return {
        "flight_number": flight["flight_number"],
        "airline": _data()["airlines"][flight["airline"]],
        "origin": flight["origin"],
        "destination": flight["destination"],
        "departure": f"{day.isoformat()}T{flight['departure']}",
        "arrival": arrival.strftime("%Y-%m-%dT%H:%M"),
        "arrival_day_offset": (arrival.date() - day).days,
        "duration_minutes": flight["duration_minutes"],
        "aircraft": flight["aircraft"],
        "fare_usd": round(flight["base_fare_usd"] * CABIN_FARE[cabin]),
        "_depart_utc": depart,
        "_arrive_utc": arrive,
    }


def _public(leg: dict) -> dict:
    return {k: v for k, v in leg.items() if not k.startswith("_")}


def _operating(origins: list[str], destinations: list[str], day: dt.date, cabin: str) -> list[dict]:
    weekday = str(day.isoweekday())
    return [_leg(f, day, cabin) for f in _data()["flights"]
            if f["origin"] in origins and f["destination"] in destinations and weekday in f["days"]]


def _airline_code(airline: str) -> str:
    airlines = _data()["airlines"]
    q = airline.strip()
    if q.upper() in airlines:
        return q.upper()
    for code, name in airlines.items():
        if name.casefold() == q.casefold():
            return code
    close = difflib.get_close_matches(q, list(airlines.values()), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ToolError(f"unknown airline '{airline}'.{hint}")


def search_flights(origin: str, destination: str, date: str, cabin: str, sort_by: str,
                   airline: str | None = None) -> dict:
    """Direct flights between two airports (or cities) that operate on the weekday of the date."""
    day = _date(date)
    origins, destinations = _airports(origin), _airports(destination)
    legs = _operating(origins, destinations, day, cabin)
    if airline:
        name = _data()["airlines"][_airline_code(airline)]
        legs = [leg for leg in legs if leg["airline"] == name]
    key = {"departure": lambda x: (x["_depart_utc"], x["flight_number"]),
           "price": lambda x: (x["fare_usd"], x["_depart_utc"]),
           "duration": lambda x: (x["duration_minutes"], x["_depart_utc"])}[sort_by]
    return {"date": day.isoformat(), "weekday": day.strftime("%A"), "cabin": cabin, "count": len(legs),
            "flights": [_public(leg) for leg in sorted(legs, key=key)]}


def get_flight_details(flight_number: str, date: str | None = None) -> dict:
    """The schedule of one flight number; with a date, whether it flies then and its exact times."""
    wanted = flight_number.replace(" ", "").upper()
    flights = {f["flight_number"]: f for f in _data()["flights"]}
    if wanted not in flights:
        close = difflib.get_close_matches(wanted, list(flights), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ToolError(f"no scheduled flight {flight_number}.{hint}")
    f = flights[wanted]
    airports = _data()["airports"]
    names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    # the clock time of arrival is the same on every operating day, so any reference day gives it
    reference = dt.date(2001, 1, 1)
    arrival = _local(_utc_minutes(reference, f["departure"], f["origin"]) + f["duration_minutes"], f["destination"])
    result = {
        "flight_number": wanted,
        "airline": _data()["airlines"][f["airline"]],
        "origin": f["origin"], "origin_city": airports[f["origin"]]["city"],
        "destination": f["destination"], "destination_city": airports[f["destination"]]["city"],
        "departure_local": f["departure"],
        "arrival_local": arrival.strftime("%H:%M"),
        "arrival_day_offset": (arrival.date() - reference).days,
        "duration_minutes": f["duration_minutes"],
        "distance_km": f["distance_km"],
        "aircraft": f["aircraft"],
        "days": [names[int(d) - 1] for d in f["days"]],
        "base_fare_usd": f["base_fare_usd"],
    }
    if date:
        day = _date(date)
        operates = str(day.isoweekday()) in f["days"]
        result["on_date"] = {"date": day.isoformat(), "weekday": day.strftime("%A"), "operates": operates}
        if operates:
            leg = _leg(f, day)
            result["on_date"].update(departure=leg["departure"], arrival=leg["arrival"])
    return result


def get_airport_info(airport: str) -> dict:
    """Airport facts plus its direct destinations and the airlines flying from it."""
    codes = _airports(airport)
    if len(codes) > 1:
        raise ToolError(f"'{airport}' has several airports: {', '.join(codes)}; ask for one IATA code")
    code = codes[0]
    info = _data()["airports"][code]
    departing = [f for f in _data()["flights"] if f["origin"] == code]
    offset = info["utc_offset_hours"]
    return {
        "code": code, "name": info["name"], "city": info["city"], "country": info["country"],
        "timezone": info["timezone"],
        "utc_offset": f"UTC{'+' if offset >= 0 else '-'}{int(abs(offset)):02d}:{round(abs(offset) % 1 * 60):02d}",
        "latitude": info["lat"], "longitude": info["lon"],
        "departures_per_week": sum(len(f["days"]) for f in departing),
        "destinations": sorted({f["destination"] for f in departing}),
        "airlines": sorted({_data()["airlines"][f["airline"]] for f in departing}),
    }


def find_cheapest_connection(origin: str, destination: str, date: str, min_layover_minutes: int,
                             max_layover_minutes: int, allow_direct: bool) -> dict:
    """Cheapest economy itinerary leaving on the date: direct, or one stop with a layover in bounds."""
    if max_layover_minutes < min_layover_minutes:
        raise ToolError("max_layover_minutes must be at least min_layover_minutes")
    day = _date(date)
    origins, destinations = _airports(origin), _airports(destination)
    options = [[leg] for leg in _operating(origins, destinations, day, "economy")] if allow_direct else []
    flights = _data()["flights"]
    for first in _operating(origins, [f["destination"] for f in flights], day, "economy"):
        hub = first["destination"]
        if hub in destinations:
            continue
        # the second leg may leave on the arrival day or the day after
        arrival_day = _local(first["_arrive_utc"], hub).date()
        for leave in (arrival_day, arrival_day + dt.timedelta(days=1)):
            for second in _operating([hub], destinations, leave, "economy"):
                layover = second["_depart_utc"] - first["_arrive_utc"]
                if min_layover_minutes <= layover <= max_layover_minutes:
                    options.append([first, second])
    if not options:
        raise ToolError(f"no itinerary from {origin} to {destination} on {day.isoformat()} with at most one "
                        f"stop and a layover of {min_layover_minutes}-{max_layover_minutes} minutes")

    def total_minutes(legs: list[dict]) -> int:
        return legs[-1]["_arrive_utc"] - legs[0]["_depart_utc"]

    best = min(options, key=lambda legs: (sum(leg["fare_usd"] for leg in legs), total_minutes(legs),
                                          legs[0]["_depart_utc"]))
    return {
        "date": day.isoformat(),
        "options_considered": len(options),
        "stops": len(best) - 1,
        "via": best[0]["destination"] if len(best) == 2 else None,
        "total_fare_usd": sum(leg["fare_usd"] for leg in best),
        "total_duration_minutes": total_minutes(best),
        "layover_minutes": best[1]["_depart_utc"] - best[0]["_arrive_utc"] if len(best) == 2 else 0,
        "flight_numbers": [leg["flight_number"] for leg in best],
        "legs": [_public(leg) for leg in best],
    }


def list_airline_routes(airline: str, origin: str | None = None) -> dict:
    """An airline's scheduled flights, optionally only those leaving one airport or city."""
    code = _airline_code(airline)
    origins = _airports(origin) if origin else None
    flights = [f for f in _data()["flights"] if f["airline"] == code and (origins is None or f["origin"] in origins)]
    flights.sort(key=lambda f: (f["origin"], f["destination"], f["departure"]))
    return {
        "airline": _data()["airlines"][code], "code": code, "count": len(flights),
        "airports_served": sorted({f["origin"] for f in flights} | {f["destination"] for f in flights}),
        "routes": [{"flight_number": f["flight_number"], "origin": f["origin"], "destination": f["destination"],
                    "departure_local": f["departure"], "days_per_week": len(f["days"])} for f in flights],
    }


PLACE = "IATA airport code (e.g. 'CDG') or a city name (all of its airports)."
DATE = {"type": "string", "format": "date", "description": "Departure date, YYYY-MM-DD (local to the origin)."}

TOOLS = [
    Tool(ToolSpec(
        name="search_flights",
        description="Search scheduled direct flights between two airports or cities on a date: only flights "
                    "that operate on that weekday, with local departure and arrival times, duration, aircraft "
                    "and one-way fare for the chosen cabin.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "origin": {"type": "string", "minLength": 2, "description": "From: " + PLACE},
            "destination": {"type": "string", "minLength": 2, "description": "To: " + PLACE},
            "date": DATE,
            "airline": {"type": "string", "description": "Only this airline (two-letter code or name)."},
            "cabin": {"type": "string", "enum": list(CABIN_FARE), "default": "economy",
                      "description": "Cabin class for the fare."},
            "sort_by": {"type": "string", "enum": ["departure", "price", "duration"], "default": "departure",
                        "description": "Order of results."},
        }, "required": ["origin", "destination", "date"]},
        returns="{date, weekday, cabin, count, flights: [{flight_number, airline, origin, destination, departure, "
                "arrival (local ISO times), arrival_day_offset, duration_minutes, aircraft, fare_usd}]}",
        examples=({"arguments": {"origin": "AMS", "destination": "CPH", "date": "2025-02-03"}},),
    ), search_flights),
    Tool(ToolSpec(
        name="get_flight_details",
        description="Look up a flight number: route, airline, local departure and arrival times, duration, "
                    "distance, aircraft, days of operation and base fare; with a date, whether it operates "
                    "that day and the exact departure and arrival date-times.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "flight_number": {"type": "string", "minLength": 3, "description": "Flight number, e.g. 'KL1071'."},
            "date": {**DATE, "description": "Optional departure date to check, YYYY-MM-DD."},
        }, "required": ["flight_number"]},
        returns="{flight_number, airline, origin, origin_city, destination, destination_city, departure_local, "
                "arrival_local, arrival_day_offset, duration_minutes, distance_km, aircraft, days, base_fare_usd, "
                "on_date: {date, weekday, operates, departure, arrival}}",
        examples=({"arguments": {"flight_number": "KL1071"}},),
    ), get_flight_details),
    Tool(ToolSpec(
        name="get_airport_info",
        description="Information about an airport: name, city, country, time zone and UTC offset, "
                    "coordinates, weekly departures, direct destinations and the airlines that fly from it.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "airport": {"type": "string", "minLength": 2,
                        "description": "IATA code, airport name, or a city with a single airport."},
        }, "required": ["airport"]},
        returns="{code, name, city, country, timezone, utc_offset, latitude, longitude, departures_per_week, "
                "destinations, airlines}",
        examples=({"arguments": {"airport": "ZRH"}},),
    ), get_airport_info),
    Tool(ToolSpec(
        name="find_cheapest_connection",
        description="Find the cheapest economy itinerary from one airport or city to another leaving on a "
                    "date, either direct or with one connection whose layover lies between a minimum and a "
                    "maximum number of minutes (the second flight may leave the next day).",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "origin": {"type": "string", "minLength": 2, "description": "From: " + PLACE},
            "destination": {"type": "string", "minLength": 2, "description": "To: " + PLACE},
            "date": DATE,
            "min_layover_minutes": {"type": "integer", "minimum": 0, "maximum": 1440, "default": 60,
                                    "description": "Shortest acceptable connection time."},
            "max_layover_minutes": {"type": "integer", "minimum": 0, "maximum": 2880, "default": 720,
                                    "description": "Longest acceptable connection time."},
            "allow_direct": {"type": "boolean", "default": True,
                             "description": "Consider nonstop flights too (false = connections only)."},
        }, "required": ["origin", "destination", "date"]},
        returns="{date, options_considered, stops, via, total_fare_usd, total_duration_minutes, layover_minutes, "
                "flight_numbers, legs: [flight as in search_flights]}",
        examples=({"arguments": {"origin": "MAN", "destination": "SIN", "date": "2025-03-10"}},),
    ), find_cheapest_connection),
    Tool(ToolSpec(
        name="list_airline_routes",
        description="List an airline's scheduled flights (flight number, route, local departure time, "
                    "flights per week), optionally only from one airport or city.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "airline": {"type": "string", "minLength": 2, "description": "Airline two-letter code or name."},
            "origin": {"type": "string", "minLength": 2, "description": "Only flights leaving here: " + PLACE},
        }, "required": ["airline"]},
        returns="{airline, code, count, airports_served, routes: [{flight_number, origin, destination, "
                "departure_local, days_per_week}]}",
        examples=({"arguments": {"airline": "SK"}},),
    ), list_airline_routes),
]
