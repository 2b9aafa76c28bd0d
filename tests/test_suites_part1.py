"""Focused checks of the geography, finance, units, dates and weather suites: meaningful errors and determinism."""
import hashlib
import json

import pytest

from toolenv.spec import ToolError
from toolenv.suites import calendar_dates, currency, geography, units, weather


def test_unknown_city_suggests_close_names():
    with pytest.raises(ToolError, match="Did you mean: Paris"):
        geography.get_city_info("Pariss")


def test_ambiguous_city_lists_countries_and_country_suffix_resolves():
    with pytest.raises(ToolError, match="Valencia, Spain.*Valencia, Venezuela"):
        geography.get_city_info("Valencia")
    assert geography.get_city_info("Valencia, VE")["country"] == "Venezuela"
    assert geography.get_city_info("sao paulo")["name"] == "São Paulo"


def test_distance_is_symmetric_and_zero_to_itself():
    there = geography.get_city_distance("Lima", "Quito")["distance"]
    assert there == geography.get_city_distance("Quito", "Lima")["distance"]
    assert geography.get_city_distance("Lima", "Lima")["distance"] == 0


def test_unsupported_currency_names_the_supported_ones():
    with pytest.raises(ToolError, match="'RUB' is not supported.*USD"):
        currency.convert_currency(10, "RUB", "EUR")


def test_currency_round_trip_and_vat_without_reduced_rate():
    there = currency.convert_currency(100, "GBP", "JPY", decimals=6)["converted_amount"]
    assert currency.convert_currency(there, "JPY", "GBP")["converted_amount"] == 100
    with pytest.raises(ToolError, match="Denmark has no reduced VAT rate"):
        currency.calculate_vat(10, "DK", rate_type="reduced")


def test_units_refuse_mixed_dimensions_and_unreadable_text():
    with pytest.raises(ToolError, match="Cannot convert mass"):
        units.convert_units(1, "kg", "m")
    with pytest.raises(ToolError, match="Could not read"):
        units.parse_quantity("five feet", "m")
    with pytest.raises(ToolError, match="Did you mean"):
        units.parse_quantity("5 fet", "m")
    with pytest.raises(ToolError, match="needs an ingredient"):
        units.convert_cooking_measure(1, "cup", "g")


def test_end_before_start_and_dst_gap_are_errors():
    with pytest.raises(ToolError, match="before start_date"):
        calendar_dates.calculate_date_difference("2024-02-01", "2024-01-01")
    with pytest.raises(ToolError, match="does not exist"):
        calendar_dates.convert_timezone("2024-03-10 02:30", "America/New_York", "UTC")
    with pytest.raises(ToolError, match="Did you mean: Europe/Paris"):
        calendar_dates.convert_timezone("2024-03-10 12:00", "Europe/Pariss", "UTC")
    with pytest.raises(ToolError, match="2023-2025 only"):
        calendar_dates.count_business_days("2022-12-01", "2022-12-31", country="US")


def test_weather_outside_the_archive_is_an_error():
    with pytest.raises(ToolError, match="2023-01-01 to 2023-12-31"):
        weather.get_daily_weather("Oslo", "2024-01-01")
    with pytest.raises(ToolError, match="same city"):
        weather.compare_city_weather("Oslo", "oslo", "2023-01-01", "2023-01-31")


def test_every_city_has_climate_normals_and_the_seasons_follow_them():
    assert {(c.name, c.country_code) for c in geography.cities()} == set(weather._climates())
    harbin_january = weather.get_monthly_weather_summary("Harbin", 1)["mean_temp_c"]
    assert harbin_january < 0 < weather.get_monthly_weather_summary("Harbin", 7)["mean_temp_c"]
    monsoon = sum(weather.get_monthly_weather_summary("Mumbai", m)["total_precipitation_mm"] for m in (6, 7, 8, 9))
    assert monsoon > 0.8 * sum(weather.get_monthly_weather_summary("Mumbai", m)["total_precipitation_mm"] for m in range(1, 13))


def test_weather_is_deterministic_and_pinned():
    """Same records after a cache reset; the fingerprint pins them across machines and Python versions."""
    city = geography.resolve_city("Tokyo")
    first = json.dumps(weather._history(city))
    weather._history.cache_clear()
    assert json.dumps(weather._history(city)) == first
    assert weather.get_daily_weather("Tokyo", "2023-03-01") == weather.get_daily_weather("tokyo", "2023-03-01")
    assert hashlib.sha256(first.encode()).hexdigest()[:16] == TOKYO_FINGERPRINT


TOKYO_FINGERPRINT = "dc10646d91eafcf0"
