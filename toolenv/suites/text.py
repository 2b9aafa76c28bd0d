"""Text processing: counts and readability, case styles, keyword frequencies, pattern extraction and
edit distance. Deterministic rules (regular expressions, a vowel-group syllable counter), no models."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from toolenv.spec import Tool, ToolError, ToolSpec

CATEGORY = "Text"
WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ0-9]+(?:['’][A-Za-zÀ-ÖØ-öø-ÿ]+)*")
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of off
on once only or other our ours ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves""".split())


def _words(text: str) -> list[str]:
    return WORD.findall(text)


def _syllables(word: str) -> int:
    """Vowel groups, minus a silent final 'e' (the usual heuristic behind Flesch calculators)."""
    w = word.lower()
    if w.isdigit():
        return 1
    groups = len(re.findall(r"[aeiouyà-ÿ]+", w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(groups, 1)


def analyze_text(text: str, words_per_minute: int) -> dict:
    """Counts plus Flesch reading ease and Flesch-Kincaid grade, the common readability formulas."""
    words = _words(text)
    if not words:
        raise ToolError("the text contains no words")
    sentences = max(len([s for s in re.split(r"[.!?]+(?:\s|$)", text.strip()) if _words(s)]), 1)
    syllables = sum(_syllables(w) for w in words)
    wps, spw = len(words) / sentences, syllables / len(words)
    ease = 206.835 - 1.015 * wps - 84.6 * spw
    level = ("very easy" if ease >= 90 else "easy" if ease >= 80 else "fairly easy" if ease >= 70
             else "standard" if ease >= 60 else "fairly difficult" if ease >= 50 else "difficult" if ease >= 30
             else "very difficult")
    return {
        "characters": len(text),
        "characters_no_spaces": len(re.sub(r"\s", "", text)),
        "words": len(words),
        "unique_words": len({w.lower() for w in words}),
        "sentences": sentences,
        "paragraphs": len([p for p in re.split(r"\n\s*\n", text) if p.strip()]),
        "syllables": syllables,
        "average_word_length": round(sum(len(w) for w in words) / len(words), 2),
        "average_sentence_length": round(wps, 2),
        "flesch_reading_ease": round(ease, 1),
        "flesch_kincaid_grade": round(0.39 * wps + 11.8 * spw - 15.59, 1),
        "reading_level": level,
        "reading_time_seconds": round(len(words) / words_per_minute * 60),
    }


def _tokens(text: str) -> list[str]:
    """Words for identifier styles: splits on non-alphanumerics and on camelCase boundaries."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", text)
    return [t for t in re.split(r"[^0-9A-Za-zÀ-ÖØ-öø-ÿ]+", spaced) if t]


def convert_text_case(text: str, style: str) -> dict:
    """Re-case text; identifier styles (snake, camel, ...) and slugs re-join its words."""
    if style == "upper":
        result = text.upper()
    elif style == "lower":
        result = text.lower()
    elif style == "title":
        result = re.sub(r"[A-Za-zÀ-ÖØ-öø-ÿ]+(?:['’][A-Za-z]+)?", lambda m: m.group(0).capitalize(), text)
    elif style == "sentence":
        result = re.sub(r"(^\s*|[.!?]\s+)([a-zà-ÿ])", lambda m: m.group(1) + m.group(2).upper(), text.lower())
    else:
        source = text
        if style == "slug":
            source = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace("'", "")
        words = _tokens(source)
        if not words:
            raise ToolError(f"the text has no letters or digits to build a {style} identifier from")
        lower = [w.lower() for w in words]
        result = {
            "snake": "_".join(lower),
            "constant": "_".join(lower).upper(),
            "kebab": "-".join(lower),
            "slug": "-".join(lower),
            "camel": lower[0] + "".join(w.capitalize() for w in lower[1:]),
            "pascal": "".join(w.capitalize() for w in lower),
        }[style]
    return {"style": style, "result": result}


def word_frequencies(text: str, top_k: int, exclude_stopwords: bool, min_length: int) -> dict:
    """Most frequent words (case-insensitive); ties are broken alphabetically so rankings are stable."""
    words = [w.lower() for w in _words(text)]
    kept = [w for w in words if len(w) >= min_length and not (exclude_stopwords and w in STOPWORDS)]
    if not kept:
        raise ToolError("no words left after removing stopwords and short words")
    counts = Counter(kept)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]
    return {
        "total_words": len(words),
        "counted_words": len(kept),
        "unique_words": len(counts),
        "top": [{"word": w, "count": c, "share": round(c / len(kept), 4)} for w, c in ranked],
    }


PATTERNS = {
    "emails": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
    "urls": r"(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]",
    "phone_numbers": r"(?<![\w+(])(?:\+?\d|\(\d)[\d\s().-]{6,}\d(?!\w)",
    "hashtags": r"(?<![\w#])#[A-Za-z_]\w*",
    "mentions": r"(?<![\w@])@[A-Za-z_]\w*",
    "numbers": r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\w@])",
}


def extract_patterns(text: str, kinds: list[str], unique: bool) -> dict:
    """Pull emails, URLs, phone numbers, hashtags, mentions or numbers out of free text, in order of appearance."""
    result = {}
    for kind in kinds:
        found = [m.strip() for m in re.findall(PATTERNS[kind], text)]
        if kind == "numbers":
            values = [float(v.replace(",", "")) for v in found]
            found = [int(v) if v.is_integer() and "." not in s else v for v, s in zip(values, found)]
        if unique:
            found = list(dict.fromkeys(found))
        result[kind] = found
    result["counts"] = {kind: len(result[kind]) for kind in kinds}
    return result


def compare_strings(a: str, b: str, case_sensitive: bool) -> dict:
    """Levenshtein edit distance (insertions, deletions, substitutions) and a 0..1 similarity."""
    if not case_sensitive:
        a, b = a.casefold(), b.casefold()
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    distance = previous[-1]
    longest = max(len(a), len(b))
    prefix = 0
    while prefix < min(len(a), len(b)) and a[prefix] == b[prefix]:
        prefix += 1
    return {
        "distance": distance,
        "similarity": round(1 - distance / longest, 4) if longest else 1.0,
        "length_a": len(a),
        "length_b": len(b),
        "common_prefix_length": prefix,
        "identical": a == b,
    }


TEXT = {"type": "string", "minLength": 1, "maxLength": 100000, "description": "The text to process."}

TOOLS = [
    Tool(ToolSpec(
        name="analyze_text",
        description="Count characters, words, sentences and paragraphs of a text and score its readability "
                    "(Flesch reading ease, Flesch-Kincaid grade level), with an estimated reading time.",
        category=CATEGORY, suite="builtin", round=1,
        parameters={"type": "object", "properties": {
            "text": TEXT,
            "words_per_minute": {"type": "integer", "minimum": 50, "maximum": 1000, "default": 200,
                                 "description": "Reading speed used for the reading time estimate."},
        }, "required": ["text"]},
        returns="{characters, characters_no_spaces, words, unique_words, sentences, paragraphs, syllables, "
                "average_word_length, average_sentence_length, flesch_reading_ease, flesch_kincaid_grade, "
                "reading_level, reading_time_seconds}",
        examples=({"arguments": {"text": "It was a bright cold day. The clocks were striking."}},),
    ), analyze_text),
    Tool(ToolSpec(
        name="convert_text_case",
        description="Convert text to another letter case or naming style: UPPER, lower, Title Case, Sentence "
                    "case, snake_case, CONSTANT_CASE, kebab-case, camelCase, PascalCase, or a URL slug "
                    "(ASCII, accents removed, hyphenated).",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "text": TEXT,
            "style": {"type": "string",
                      "enum": ["upper", "lower", "title", "sentence", "snake", "constant", "kebab", "camel",
                               "pascal", "slug"],
                      "description": "Target style."},
        }, "required": ["text", "style"]},
        returns="{style, result}",
        examples=({"arguments": {"text": "user account id", "style": "camel"}},
                  {"arguments": {"text": "Crème brûlée recipe", "style": "slug"}}),
    ), convert_text_case),
    Tool(ToolSpec(
        name="word_frequencies",
        description="Rank the most frequent words of a text (case-insensitive), optionally ignoring common "
                    "English stopwords such as 'the' and 'and' and words shorter than a minimum length.",
        category=CATEGORY, suite="builtin", round=2,
        parameters={"type": "object", "properties": {
            "text": TEXT,
            "top_k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10,
                      "description": "How many of the most frequent words to return."},
            "exclude_stopwords": {"type": "boolean", "default": True,
                                  "description": "Skip common English function words."},
            "min_length": {"type": "integer", "minimum": 1, "maximum": 30, "default": 1,
                           "description": "Ignore words shorter than this many characters."},
        }, "required": ["text"]},
        returns="{total_words, counted_words, unique_words, top: [{word, count, share}]} ordered by count, "
                "ties alphabetically",
        examples=({"arguments": {"text": "red fish blue fish old fish new fish", "top_k": 2}},),
    ), word_frequencies),
    Tool(ToolSpec(
        name="extract_patterns",
        description="Extract structured items from free text: email addresses, URLs, phone numbers, "
                    "hashtags, @mentions and numbers (thousands separators removed), in order of appearance.",
        category=CATEGORY, suite="builtin", round=3,
        parameters={"type": "object", "properties": {
            "text": TEXT,
            "kinds": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"type": "string", "enum": list(PATTERNS)},
                      "default": list(PATTERNS), "description": "Which kinds of items to extract."},
            "unique": {"type": "boolean", "default": True, "description": "Drop repeated items."},
        }, "required": ["text"]},
        returns="{<kind>: [items] for each requested kind, counts: {<kind>: n}}",
        examples=({"arguments": {"text": "Ping @ops_crew about #launch 2.0", "kinds": ["mentions", "hashtags"]}},),
    ), extract_patterns),
    Tool(ToolSpec(
        name="compare_strings",
        description="Compare two strings: Levenshtein edit distance (the minimum number of single-character "
                    "insertions, deletions and substitutions), a similarity score between 0 and 1, and the "
                    "length of their common prefix. Useful for typos and fuzzy matching.",
        category=CATEGORY, suite="builtin", round=4,
        parameters={"type": "object", "properties": {
            "a": {"type": "string", "maxLength": 5000, "description": "First string."},
            "b": {"type": "string", "maxLength": 5000, "description": "Second string."},
            "case_sensitive": {"type": "boolean", "default": True,
                               "description": "If false, compare case-insensitively."},
        }, "required": ["a", "b"]},
        returns="{distance, similarity, length_a, length_b, common_prefix_length, identical}",
        examples=({"arguments": {"a": "colour", "b": "color"}},),
    ), compare_strings),
]
