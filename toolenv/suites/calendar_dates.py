"""Dates: differences, date arithmetic, calendar facts, time zone conversion, business days.

Pure functions of their arguments: nothing reads the clock (a "today" is always an explicit argument),
public holidays for 2023-2025 come from data/holidays.json, and time zones from the IANA database.
"""
from __future__ import annotations

import calendar
import datetime as dt
import difflib
import json
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Dates"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
HOLIDAY_COUNTRIES = ["US", "GB", "DE", "FR", "JP"]
DATE = {"type": "string", "format": "date", "description": "Date as YYYY-MM-DD."}


@lru_cache(maxsize=1)
def _holiday_table() -> dict:
    with open(DATA_DIR / "holidays.json", encoding="utf-8") as f:
        return json.load(f)


def _holidays(country: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    first, last = _holiday_table()["years"]
    if start.year < first or end.year > last:
        raise ToolError(f"Holiday calendars cover {first}-{last} only; {start.isoformat()}..{end.isoformat()} is outside.")
    return {dt.date.fromisoformat(h["date"]): h["name"] for h in _holiday_table()["countries"][country]["holidays"]}


def _date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as e:
        raise ToolError(f"{field} '{text}' is not a valid YYYY-MM-DD date ({e}).") from None


def _ordered(start_date: str, end_date: str) -> tuple[dt.date, dt.date]:
    start, end = _date(start_date, "start_date"), _date(end_date, "end_date")
    if end < start:
        raise ToolError(f"end_date {end.isoformat()} is before start_date {start.isoformat()}; swap them.")
    return start, end


def _add_months(day: dt.date, months: int) -> tuple[dt.date, bool]:
    """Shift by calendar months, clipping to the month's last day (Jan 31 + 1 month = Feb 28/29)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    if not 1 <= year <= 9999:
        raise ToolError("The resulting date is outside years 1-9999.")
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last)), day.day > last


def calculate_date_difference(start_date: str, end_date: str, include_end_date: bool = False) -> dict:
    start, end = _ordered(start_date, end_date)
    months = (end.year - start.year) * 12 + end.month - start.month
    while _add_months(start, months)[0] > end:
        months -= 1
    total = (end - start).days + (1 if include_end_date else 0)
    return {
        "start_date": start.isoformat(), "end_date": end.isoformat(), "total_days": total,
        "weeks": total // 7, "remaining_days": total % 7,
        "years": months // 12, "months": months % 12, "days": (end - _add_months(start, months)[0]).days,
    }


def add_to_date(date: str, years: int = 0, months: int = 0, weeks: int = 0, days: int = 0) -> dict:
    start = _date(date, "date")
    shifted, clipped = _add_months(start, years * 12 + months)
    try:
        result = shifted + dt.timedelta(weeks=weeks, days=days)
    except OverflowError:
        raise ToolError("The resulting date is outside years 1-9999.") from None
    return {"start_date": start.isoformat(), "result_date": result.isoformat(),
            "weekday": calendar.day_name[result.weekday()], "clipped_to_month_end": clipped}


def get_date_info(date: str, country: str | None = None) -> dict:
    day = _date(date, "date")
    iso = day.isocalendar()
    year_days = 366 if calendar.isleap(day.year) else 365
    info = {
        "date": day.isoformat(), "weekday": calendar.day_name[day.weekday()], "is_weekend": day.weekday() >= 5,
        "iso_year": iso.year, "iso_week": iso.week, "iso_weekday": iso.weekday,
        "day_of_year": day.timetuple().tm_yday, "days_left_in_year": year_days - day.timetuple().tm_yday,
        "quarter": (day.month - 1) // 3 + 1, "is_leap_year": calendar.isleap(day.year),
        "days_in_month": calendar.monthrange(day.year, day.month)[1],
    }
    if country:
        info["holiday"] = _holidays(country, day, day).get(day)
    return info


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(name.strip(), sorted(available_timezones()), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ToolError(f"Unknown IANA time zone '{name}' (expected e.g. 'Europe/Paris', 'America/New_York', 'UTC').{hint}") from None


def _offset(moment: dt.datetime) -> str:
    minutes = int(moment.utcoffset().total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def convert_timezone(datetime: str, from_timezone: str, to_timezone: str) -> dict:
    try:
        naive = dt.datetime.fromisoformat(datetime.strip())
    except ValueError:
        raise ToolError(f"datetime '{datetime}' is not ISO 8601 local time like '2024-03-10 14:30'.") from None
    if naive.tzinfo is not None:
        raise ToolError("Give datetime as a local wall-clock time without an offset; the zone goes in from_timezone.")
    source_zone, target_zone = _zone(from_timezone), _zone(to_timezone)
    local = naive.replace(tzinfo=source_zone)
    if local.astimezone(dt.timezone.utc).astimezone(source_zone).replace(tzinfo=None) != naive:
        raise ToolError(f"{naive.isoformat(' ')} does not exist in {from_timezone}: the clocks skip it at a daylight-saving change.")
    target = local.astimezone(target_zone)
    return {
        "source_datetime": naive.isoformat(" "), "from_timezone": from_timezone.strip(), "source_utc_offset": _offset(local),
        "converted_datetime": target.replace(tzinfo=None).isoformat(" "), "to_timezone": to_timezone.strip(),
        "target_utc_offset": _offset(target), "target_abbreviation": target.tzname(),
        "target_is_dst": bool(target.dst()), "day_shift": (target.date() - naive.date()).days,
    }


def count_business_days(start_date: str, end_date: str, country: str | None = None) -> dict:
    start, end = _ordered(start_date, end_date)
    holidays = _holidays(country, start, end) if country else {}
    days = [start + dt.timedelta(n) for n in range((end - start).days + 1)]
    weekend = [d for d in days if d.weekday() >= 5]
    observed = [d for d in days if d.weekday() < 5 and d in holidays]
    return {
        "start_date": start.isoformat(), "end_date": end.isoformat(), "calendar_days": len(days),
        "weekend_days": len(weekend), "holidays_on_weekdays": [{"date": d.isoformat(), "name": holidays[d]} for d in observed],
        "business_days": len(days) - len(weekend) - len(observed),
    }


COUNTRY = {"type": "string", "enum": HOLIDAY_COUNTRIES,
           "description": "Public-holiday calendar (2023-2025): US federal (observed), GB England & Wales bank "
                          "holidays, DE nationwide, FR, JP."}

TOOLS = [
    Tool(ToolSpec(
        name="calculate_date_difference",
        description="Time between two dates: total days, whole weeks plus days, and calendar years/months/days "
                    "(also gives someone's age: birth date to the reference date).",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "start_date": {**DATE, "description": "Earlier date, YYYY-MM-DD."},
            "end_date": {**DATE, "description": "Later date, YYYY-MM-DD (must not be before start_date)."},
            "include_end_date": {"type": "boolean", "default": False,
                                 "description": "Count the end date as a day too (adds 1 to total_days, weeks, remaining_days)."},
        }, "required": ["start_date", "end_date"]},
        returns="{start_date, end_date, total_days, weeks, remaining_days, years, months, days}",
        examples=({"arguments": {"start_date": "2019-06-15", "end_date": "2022-01-03"}},),
    ), calculate_date_difference),
    Tool(ToolSpec(
        name="add_to_date",
        description="Add (or subtract, with negative numbers) years, months, weeks and days to a date. Months are "
                    "added first and clipped to the month's last day (Jan 31 + 1 month = Feb 28 or 29).",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "date": {**DATE, "description": "Starting date, YYYY-MM-DD."},
            "years": {"type": "integer", "default": 0, "description": "Years to add (negative to subtract)."},
            "months": {"type": "integer", "default": 0, "description": "Months to add (negative to subtract)."},
            "weeks": {"type": "integer", "default": 0, "description": "Weeks to add (negative to subtract)."},
            "days": {"type": "integer", "default": 0, "description": "Days to add (negative to subtract)."},
        }, "required": ["date"], "minProperties": 2},  # the date and at least one amount: adding nothing is no request
        returns="{start_date, result_date, weekday, clipped_to_month_end}",
        examples=({"arguments": {"date": "2021-03-31", "months": 1}}, {"arguments": {"date": "2020-07-01", "days": -45}}),
    ), add_to_date),
    Tool(ToolSpec(
        name="get_date_info",
        description="Calendar facts about a date: weekday, ISO week number and year, day of the year, quarter, "
                    "leap year, days in its month, and optionally whether it is a public holiday in a country.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "date": DATE,
            "country": {**COUNTRY, "description": "Also report the public holiday on this date, if any. " + COUNTRY["description"]},
        }, "required": ["date"]},
        returns="{date, weekday, is_weekend, iso_year, iso_week, iso_weekday (1=Monday), day_of_year, days_left_in_year, "
                "quarter, is_leap_year, days_in_month, holiday? (name or null)}",
        examples=({"arguments": {"date": "2019-12-30"}},),
    ), get_date_info),
    Tool(ToolSpec(
        name="convert_timezone",
        description="Convert a local date and time from one IANA time zone to another, taking daylight saving "
                    "time into account.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "datetime": {"type": "string", "description": "Local date and time, ISO 8601 without offset: 'YYYY-MM-DD HH:MM[:SS]'."},
            "from_timezone": {"type": "string", "description": "IANA zone of the given time, e.g. 'America/Chicago' or 'UTC'."},
            "to_timezone": {"type": "string", "description": "IANA zone to convert to, e.g. 'Asia/Tokyo'."},
        }, "required": ["datetime", "from_timezone", "to_timezone"]},
        returns="{source_datetime, from_timezone, source_utc_offset, converted_datetime ('YYYY-MM-DD HH:MM:SS'), "
                "to_timezone, target_utc_offset, target_abbreviation, target_is_dst, day_shift (days)}",
        examples=({"arguments": {"datetime": "2022-11-05 18:00", "from_timezone": "Europe/Lisbon", "to_timezone": "America/Denver"}},),
    ), convert_timezone),
    Tool(ToolSpec(
        name="count_business_days",
        description="Count working days (Monday-Friday) between two dates, both included, optionally also "
                    "excluding a country's public holidays.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "start_date": {**DATE, "description": "First day of the period, YYYY-MM-DD (included)."},
            "end_date": {**DATE, "description": "Last day of the period, YYYY-MM-DD (included)."},
            "country": {**COUNTRY, "description": "Exclude this country's public holidays; omit to exclude only weekends. " + COUNTRY["description"]},
        }, "required": ["start_date", "end_date"]},
        returns="{start_date, end_date, calendar_days, weekend_days, holidays_on_weekdays: [{date, name}], business_days}",
        examples=({"arguments": {"start_date": "2023-02-01", "end_date": "2023-02-14"}},),
    ), count_business_days),
]
