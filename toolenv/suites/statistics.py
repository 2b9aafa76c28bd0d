"""Statistics and math on lists of numbers: descriptive statistics, regression, correlation, the normal
distribution and counting. Pure functions over the arguments, so every answer is exactly reproducible."""
from __future__ import annotations

import math
from collections import Counter

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Statistics"
NUMBER_LIST = {"type": "array", "items": {"type": "number"}}


def _round(value: float, decimals: int) -> float:
    return round(float(value), decimals)


def _percentile(ordered: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (the spreadsheet PERCENTILE.INC / numpy default)."""
    position = (len(ordered) - 1) * p / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _pearson(x: list[float], y: list[float]) -> float:
    mx, my = _mean(x), _mean(y)
    sxy = math.fsum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = math.fsum((a - mx) ** 2 for a in x)
    syy = math.fsum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        raise ToolError("correlation is undefined when one of the lists is constant (zero variance)")
    return sxy / math.sqrt(sxx * syy)


def _ranks(values: list[float]) -> list[float]:
    """Ranks starting at 1; ties share the average of their positions (as Spearman's rho requires)."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _paired(x: list[float], y: list[float], minimum: int) -> None:
    if len(x) != len(y):
        raise ToolError(f"x and y must have the same length (got {len(x)} and {len(y)})")
    if len(x) < minimum:
        raise ToolError(f"need at least {minimum} (x, y) pairs, got {len(x)}")


def describe_numbers(numbers: list[float], variance_type: str, decimals: int,
                     percentiles: list[float] | None = None) -> dict:
    """Summary statistics of a list; sample vs population decides the n-1 or n denominator."""
    if not numbers:
        raise ToolError("numbers is empty: give at least one value")
    n = len(numbers)
    if variance_type == "sample" and n < 2:
        raise ToolError("the sample standard deviation needs at least 2 values; use variance_type='population'")
    ordered = sorted(numbers)
    mean = _mean(numbers)
    ddof = 1 if variance_type == "sample" else 0
    variance = math.fsum((v - mean) ** 2 for v in numbers) / (n - ddof)
    counts = Counter(numbers)
    top = max(counts.values())
    result = {
        "count": n,
        "sum": _round(math.fsum(numbers), decimals),
        "mean": _round(mean, decimals),
        "median": _round(_percentile(ordered, 50), decimals),
        "modes": sorted(v for v, c in counts.items() if c == top) if top > 1 else [],
        "min": ordered[0],
        "max": ordered[-1],
        "range": _round(ordered[-1] - ordered[0], decimals),
        "variance": _round(variance, decimals),
        "stdev": _round(math.sqrt(variance), decimals),
        "variance_type": variance_type,
        "q1": _round(_percentile(ordered, 25), decimals),
        "q3": _round(_percentile(ordered, 75), decimals),
    }
    result["iqr"] = _round(result["q3"] - result["q1"], decimals)
    if percentiles:
        bad = [p for p in percentiles if not 0 <= p <= 100]
        if bad:
            raise ToolError(f"percentiles must lie between 0 and 100, got {bad}")
        result["percentiles"] = [{"p": p, "value": _round(_percentile(ordered, p), decimals)} for p in percentiles]
    return result


def fit_linear_regression(x: list[float], y: list[float], decimals: int,
                          predict_at: list[float] | None = None) -> dict:
    """Ordinary least squares y = slope * x + intercept, with R² and optional predictions."""
    _paired(x, y, 2)
    mx, my = _mean(x), _mean(y)
    sxx = math.fsum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ToolError("all x values are equal: the slope is undefined")
    slope = math.fsum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    intercept = my - slope * mx
    ss_res = math.fsum((b - (slope * a + intercept)) ** 2 for a, b in zip(x, y))
    ss_tot = math.fsum((b - my) ** 2 for b in y)
    r_squared = 1.0 if ss_tot == 0 else 1 - ss_res / ss_tot
    slope_r, intercept_r = _round(slope, decimals), _round(intercept, decimals)
    sign = "-" if intercept_r < 0 else "+"
    return {
        "n": len(x),
        "slope": slope_r,
        "intercept": intercept_r,
        "r_squared": _round(r_squared, decimals),
        "equation": f"y = {slope_r}x {sign} {abs(intercept_r)}",
        "predictions": [{"x": v, "y": _round(slope * v + intercept, decimals)} for v in predict_at or []],
    }


def compute_correlation(x: list[float], y: list[float], method: str, decimals: int) -> dict:
    """Pearson (linear) or Spearman (rank) correlation with a plain-words strength label."""
    _paired(x, y, 3)
    r = _pearson(_ranks(x), _ranks(y)) if method == "spearman" else _pearson(x, y)
    size = abs(r)
    strength = ("very strong" if size >= 0.8 else "strong" if size >= 0.6 else "moderate" if size >= 0.4
                else "weak" if size >= 0.2 else "very weak or none")
    direction = "positive" if r > 0 else "negative" if r < 0 else "none"
    return {"method": method, "n": len(x), "coefficient": _round(r, decimals), "strength": strength,
            "direction": direction}


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def normal_probability(value: float, mean: float, stdev: float, tail: str, decimals: int,
                       upper_value: float | None = None) -> dict:
    """z-score of a value and the probability of the chosen region under a normal distribution."""
    if stdev <= 0:
        raise ToolError("stdev must be positive")
    z = (value - mean) / stdev
    result = {"z_score": _round(z, decimals), "tail": tail}
    if tail == "below":
        probability = _normal_cdf(z)
    elif tail == "above":
        probability = 1 - _normal_cdf(z)
    else:
        if upper_value is None:
            raise ToolError("tail='between' needs upper_value (the upper end of the interval)")
        if upper_value < value:
            raise ToolError(f"upper_value ({upper_value}) must not be smaller than value ({value})")
        z_upper = (upper_value - mean) / stdev
        result["z_score_upper"] = _round(z_upper, decimals)
        probability = _normal_cdf(z_upper) - _normal_cdf(z)
    result["probability"] = _round(probability, decimals)
    result["percent"] = _round(probability * 100, max(decimals - 2, 0))
    return result


def count_combinations(n: int, k: int, ordered: bool, repetition: bool) -> dict:
    """Ways to choose k of n items: combinations or permutations, with or without repetition."""
    if k > n and not repetition:
        raise ToolError(f"cannot choose {k} distinct items out of {n}; set repetition=true or lower k")
    if ordered:
        count = n ** k if repetition else math.perm(n, k)
        formula = f"{n}^{k}" if repetition else f"P({n},{k}) = {n}!/({n}-{k})!"
    else:
        count = math.comb(n + k - 1, k) if repetition else math.comb(n, k)
        formula = f"C({n}+{k}-1,{k})" if repetition else f"C({n},{k}) = {n}!/({k}!({n}-{k})!)"
    return {"n": n, "k": k, "ordered": ordered, "repetition": repetition, "count": count, "formula": formula}


DECIMALS = {"type": "integer", "minimum": 0, "maximum": 12, "default": 4,
            "description": "Decimal places to round results to."}

TOOLS = [
    Tool(ToolSpec(
        name="describe_numbers",
        description="Descriptive statistics of a list of numbers: count, sum, mean, median, modes, min, max, "
                    "range, variance and standard deviation (sample or population), quartiles and any "
                    "percentiles you ask for (linear interpolation).",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "numbers": {**NUMBER_LIST, "minItems": 1, "description": "The data values."},
            "variance_type": {"type": "string", "enum": ["sample", "population"], "default": "sample",
                              "description": "Divide by n-1 (sample) or n (population) for variance and stdev."},
            "percentiles": {**NUMBER_LIST, "description": "Extra percentiles to compute, each between 0 and 100, "
                                                          "e.g. [10, 90]."},
            "decimals": DECIMALS,
        }, "required": ["numbers"]},
        returns="{count, sum, mean, median, modes (empty if no value repeats), min, max, range, variance, stdev, "
                "variance_type, q1, q3, iqr, percentiles: [{p, value}] when asked}",
        examples=({"arguments": {"numbers": [3, 7, 7, 2, 9]}},
                  {"arguments": {"numbers": [1.5, 2.5, 4.0], "variance_type": "population",
                                 "percentiles": [50]}}),
    ), describe_numbers),
    Tool(ToolSpec(
        name="fit_linear_regression",
        description="Fit a straight line y = slope*x + intercept to paired data by ordinary least squares, "
                    "report the goodness of fit (R squared) and optionally predict y for new x values.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "x": {**NUMBER_LIST, "minItems": 2, "description": "Independent variable values."},
            "y": {**NUMBER_LIST, "minItems": 2, "description": "Dependent variable values, same length as x."},
            "predict_at": {**NUMBER_LIST, "description": "x values to predict y for with the fitted line."},
            "decimals": DECIMALS,
        }, "required": ["x", "y"]},
        returns="{n, slope, intercept, r_squared, equation, predictions: [{x, y}]}",
        examples=({"arguments": {"x": [0, 1, 2], "y": [1, 3, 5]}},
                  {"arguments": {"x": [1, 2, 4], "y": [2, 3, 7], "predict_at": [5]}}),
    ), fit_linear_regression),
    Tool(ToolSpec(
        name="compute_correlation",
        description="Correlation coefficient between two paired lists of numbers: Pearson (linear) or "
                    "Spearman (rank-based, robust to outliers and monotonic non-linear relations), with a "
                    "label for its strength and direction.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "x": {**NUMBER_LIST, "minItems": 3, "description": "First variable."},
            "y": {**NUMBER_LIST, "minItems": 3, "description": "Second variable, same length as x."},
            "method": {"type": "string", "enum": ["pearson", "spearman"], "default": "pearson",
                       "description": "Correlation measure."},
            "decimals": DECIMALS,
        }, "required": ["x", "y"]},
        returns="{method, n, coefficient (-1..1), strength, direction}",
        examples=({"arguments": {"x": [1, 2, 3, 4], "y": [2, 4, 5, 4]}},),
    ), compute_correlation),
    Tool(ToolSpec(
        name="normal_probability",
        description="Normal distribution calculator: the z-score of a value and the probability of falling "
                    "below it, above it, or between it and an upper value, for a given mean and standard "
                    "deviation (standard normal by default).",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "value": {"type": "number", "description": "The value (lower end of the interval for 'between')."},
            "mean": {"type": "number", "default": 0, "description": "Mean of the distribution."},
            "stdev": {"type": "number", "exclusiveMinimum": 0, "default": 1,
                      "description": "Standard deviation of the distribution."},
            "tail": {"type": "string", "enum": ["below", "above", "between"], "default": "below",
                     "description": "Region: P(X < value), P(X > value) or P(value < X < upper_value)."},
            "upper_value": {"type": "number", "description": "Upper end of the interval; only for tail='between'."},
            "decimals": DECIMALS,
        }, "required": ["value"]},
        returns="{z_score, z_score_upper (for between), tail, probability (0..1), percent}",
        examples=({"arguments": {"value": 1.5}},
                  {"arguments": {"value": 60, "mean": 50, "stdev": 5, "tail": "above"}}),
    ), normal_probability),
    Tool(ToolSpec(
        name="count_combinations",
        description="Combinatorics: the number of ways to choose k items from n, either unordered "
                    "(combinations, nCr) or ordered (permutations, nPr), with or without repetition. "
                    "Results are exact integers.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "Number of distinct items."},
            "k": {"type": "integer", "minimum": 0, "maximum": 1000, "description": "How many are chosen."},
            "ordered": {"type": "boolean", "default": False,
                        "description": "True if the order of the chosen items matters (permutations)."},
            "repetition": {"type": "boolean", "default": False,
                           "description": "True if an item may be chosen more than once."},
        }, "required": ["n", "k"]},
        returns="{n, k, ordered, repetition, count, formula}",
        examples=({"arguments": {"n": 6, "k": 2}}, {"arguments": {"n": 4, "k": 3, "ordered": True}}),
    ), count_combinations),
]
