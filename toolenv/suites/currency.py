"""Finance: currency conversion at a fixed rate table (EUR-based reference rates of 2024-01-02),
VAT for European countries, compound interest and loan amortisation.

Rates never change at run time, so answers reproduce; every result says which date its rates are from.
"""
from __future__ import annotations

import difflib
import json
import math
from functools import lru_cache
from pathlib import Path

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Finance"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
PERIODS_PER_YEAR = {"annually": 1, "semiannually": 2, "quarterly": 4, "monthly": 12, "daily": 365}


@lru_cache(maxsize=1)
def _table() -> dict:
    with open(DATA_DIR / "currency.json", encoding="utf-8") as f:
        return json.load(f)


def _rate_per_eur(code: str) -> float:
    currencies = _table()["currencies"]
    key = code.strip().upper()
    if key not in currencies:
        close = difflib.get_close_matches(key, list(currencies), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ToolError(f"Currency '{code}' is not supported. Supported ISO 4217 codes: "
                        f"{', '.join(sorted(currencies))}.{hint}")
    return currencies[key]["rate"]


def convert_currency(amount: float, from_currency: str, to_currency: str, decimals: int = 2) -> dict:
    rate = _rate_per_eur(to_currency) / _rate_per_eur(from_currency)
    return {
        "amount": amount, "from_currency": from_currency.strip().upper(), "to_currency": to_currency.strip().upper(),
        "rate": round(rate, 6), "converted_amount": round(amount * rate, decimals), "rate_date": _table()["date"],
    }


def get_exchange_rates(base: str = "EUR", symbols: list[str] | None = None, decimals: int = 4) -> dict:
    base_rate = _rate_per_eur(base)
    codes = [s.strip().upper() for s in symbols] if symbols else sorted(_table()["currencies"])
    return {
        "base": base.strip().upper(), "date": _table()["date"],
        "rates": {code: round(_rate_per_eur(code) / base_rate, decimals) for code in codes if code != base.strip().upper()},
    }


def _vat_country(text: str) -> tuple[str, dict]:
    vat = {k: v for k, v in _table()["vat"].items() if not k.startswith("_")}
    key = text.strip()
    by_name = {v["country"].casefold(): k for k, v in vat.items()}
    code = key.upper() if key.upper() in vat else by_name.get(key.casefold())
    if code is None:
        supported = ", ".join(f"{v['country']} ({k})" for k, v in sorted(vat.items()))
        raise ToolError(f"No VAT rates for '{text}'. Supported: {supported}.")
    return code, vat[code]


def calculate_vat(amount: float, country: str, rate_type: str = "standard", price_includes_vat: bool = False) -> dict:
    code, entry = _vat_country(country)
    if rate_type == "standard":
        rate = entry["standard"]
    elif entry["reduced"]:
        rate = min(entry["reduced"])
    else:
        raise ToolError(f"{entry['country']} has no reduced VAT rate; only the standard {entry['standard']}%.")
    net = amount / (1 + rate / 100) if price_includes_vat else amount
    gross = amount if price_includes_vat else amount * (1 + rate / 100)
    return {
        "country": entry["country"], "country_code": code, "rate_type": rate_type, "rate_percent": rate,
        "net_amount": round(net, 2), "vat_amount": round(gross - net, 2), "gross_amount": round(gross, 2),
    }


def calculate_compound_interest(principal: float, annual_rate_percent: float, years: float,
                                compounding: str = "monthly", contribution_per_period: float = 0) -> dict:
    r = annual_rate_percent / 100
    if compounding == "continuously":
        if contribution_per_period:
            raise ToolError("Periodic contributions need a discrete compounding frequency, not 'continuously'.")
        final, periods, effective = principal * math.exp(r * years), 0, math.exp(r) - 1
    else:
        n = PERIODS_PER_YEAR[compounding]
        periods = round(years * n)
        if not math.isclose(periods, years * n, abs_tol=1e-9):
            raise ToolError(f"{years} years is not a whole number of {compounding} periods.")
        i = r / n
        growth = (1 + i) ** periods
        annuity = periods if i == 0 else (growth - 1) / i
        final, effective = principal * growth + contribution_per_period * annuity, (1 + i) ** n - 1
    contributed = principal + contribution_per_period * periods
    return {
        "final_amount": round(final, 2), "total_contributions": round(contributed, 2),
        "interest_earned": round(final - contributed, 2), "periods": periods,
        "effective_annual_rate_percent": round(effective * 100, 4),
    }


def calculate_loan_payment(principal: float, annual_rate_percent: float, term_months: int,
                           down_payment: float = 0, schedule_months: int = 0) -> dict:
    loan = principal - down_payment
    if loan <= 0:
        raise ToolError("The down payment covers the whole price; there is nothing to borrow.")
    i = annual_rate_percent / 100 / 12
    payment = loan / term_months if i == 0 else loan * i / (1 - (1 + i) ** -term_months)
    schedule, balance = [], loan
    for month in range(1, min(schedule_months, term_months) + 1):
        interest = balance * i
        balance -= payment - interest
        schedule.append({"month": month, "payment": round(payment, 2), "interest": round(interest, 2),
                         "principal": round(payment - interest, 2), "balance": round(max(balance, 0.0), 2)})
    result = {
        "loan_amount": round(loan, 2), "monthly_payment": round(payment, 2),
        "total_paid": round(payment * term_months, 2), "total_interest": round(payment * term_months - loan, 2),
    }
    if schedule:
        result["schedule"] = schedule
    return result


CURRENCY_CODE = {"type": "string", "description": "ISO 4217 currency code, e.g. 'USD', 'EUR', 'JPY'."}

TOOLS = [
    Tool(ToolSpec(
        name="convert_currency",
        description="Convert an amount of money from one currency to another using the reference exchange "
                    "rates of 2024-01-02 (about 30 major currencies).",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "amount": {"type": "number", "minimum": 0, "description": "Amount in the source currency."},
            "from_currency": {**CURRENCY_CODE, "description": "Source currency, ISO 4217 code (e.g. 'USD')."},
            "to_currency": {**CURRENCY_CODE, "description": "Target currency, ISO 4217 code (e.g. 'JPY')."},
            "decimals": {"type": "integer", "minimum": 0, "maximum": 6, "default": 2,
                         "description": "Decimal places of the converted amount."},
        }, "required": ["amount", "from_currency", "to_currency"]},
        returns="{amount, from_currency, to_currency, rate (units of target per 1 source), converted_amount, rate_date}",
        examples=({"arguments": {"amount": 250, "from_currency": "CAD", "to_currency": "MXN"}},),
    ), convert_currency),
    Tool(ToolSpec(
        name="get_exchange_rates",
        description="List exchange rates (units of each currency per 1 unit of a base currency) from the "
                    "reference table of 2024-01-02, for all supported currencies or a chosen few.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "base": {**CURRENCY_CODE, "default": "EUR", "description": "Base currency, ISO 4217 code."},
            "symbols": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                        "description": "ISO 4217 codes to include; omit for every supported currency."},
            "decimals": {"type": "integer", "minimum": 0, "maximum": 8, "default": 4,
                         "description": "Decimal places of each rate."},
        }, "required": []},
        returns="{base, date, rates: {CODE: units per 1 base}}",
        examples=({"arguments": {"base": "SEK", "symbols": ["NOK", "DKK"]}},),
    ), get_exchange_rates),
    Tool(ToolSpec(
        name="calculate_vat",
        description="Add or extract value-added tax for a European country using its 2024 standard or "
                    "lowest reduced VAT rate.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "amount": {"type": "number", "minimum": 0, "description": "The price to tax (net) or to split (gross)."},
            "country": {"type": "string", "description": "EU country, United Kingdom, Norway or Switzerland: name or ISO code."},
            "rate_type": {"type": "string", "enum": ["standard", "reduced"], "default": "standard",
                          "description": "'standard' rate, or 'reduced' for the country's lowest reduced rate "
                                         "(super-reduced rates excluded)."},
            "price_includes_vat": {"type": "boolean", "default": False,
                                   "description": "True if amount already includes VAT (extract it), false to add VAT."},
        }, "required": ["amount", "country"]},
        returns="{country, country_code, rate_type, rate_percent, net_amount, vat_amount, gross_amount}",
        examples=({"arguments": {"amount": 80, "country": "AT"}},
                  {"arguments": {"amount": 59.9, "country": "Portugal", "price_includes_vat": True}}),
    ), calculate_vat),
    Tool(ToolSpec(
        name="calculate_compound_interest",
        description="Grow a savings balance with compound interest, optionally adding a fixed deposit at the "
                    "end of every compounding period.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "principal": {"type": "number", "minimum": 0, "description": "Starting balance."},
            "annual_rate_percent": {"type": "number", "minimum": 0, "maximum": 100, "description": "Nominal yearly interest rate in percent."},
            "years": {"type": "number", "exclusiveMinimum": 0, "maximum": 100, "description": "Investment horizon in years."},
            "compounding": {"type": "string", "enum": ["annually", "semiannually", "quarterly", "monthly", "daily", "continuously"],
                            "default": "monthly", "description": "How often interest is compounded."},
            "contribution_per_period": {"type": "number", "minimum": 0, "default": 0,
                                        "description": "Deposit added at the end of each compounding period."},
        }, "required": ["principal", "annual_rate_percent", "years"]},
        returns="{final_amount, total_contributions, interest_earned, periods, effective_annual_rate_percent}",
        examples=({"arguments": {"principal": 1200, "annual_rate_percent": 2.5, "years": 3}},),
    ), calculate_compound_interest),
    Tool(ToolSpec(
        name="calculate_loan_payment",
        description="Monthly payment of a fixed-rate amortising loan or mortgage, with totals and optionally "
                    "the first months of the amortisation schedule.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "principal": {"type": "number", "exclusiveMinimum": 0, "description": "Purchase price or amount to finance."},
            "annual_rate_percent": {"type": "number", "minimum": 0, "maximum": 100, "description": "Nominal yearly interest rate in percent."},
            "term_months": {"type": "integer", "minimum": 1, "maximum": 600, "description": "Loan term in months (e.g. 360 for 30 years)."},
            "down_payment": {"type": "number", "minimum": 0, "default": 0, "description": "Paid up front; subtracted from principal."},
            "schedule_months": {"type": "integer", "minimum": 0, "maximum": 24, "default": 0,
                                "description": "Include the amortisation schedule for this many first months."},
        }, "required": ["principal", "annual_rate_percent", "term_months"]},
        returns="{loan_amount, monthly_payment, total_paid, total_interest, schedule?: [{month, payment, interest, principal, balance}]}",
        examples=({"arguments": {"principal": 18000, "annual_rate_percent": 7.9, "term_months": 48}},),
    ), calculate_loan_payment),
]
