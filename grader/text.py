"""Learner text made safe to print and to write, once, where it enters the grader.

A leaf module (it imports nothing of the grader), so that every part can use it.  Whatever
a learner controls (exception names and messages, function names, file names) is bounded
and cleaned here: afterwards it is fit for every output the grader writes — a terminal
(no escape sequences, no control characters, no direction overrides), JSON, CSV (with
publish.classlist.csv_cell) and JUnit XML (no character XML 1.0 forbids).  Time is linear
in the input, and no more than `limit` characters of it are ever cleaned.
"""
import re
import unicodedata

MAX_NAME = 200       # characters of a name a learner chooses (exception type, function, kind)
MAX_MESSAGE = 4000   # characters of one learner-derived message (a check's feedback)

_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x9b[0-?]*[ -/]*[@-~]")
_DROP = ("Cc", "Cf", "Cs", "Co")   # control, format (bidi overrides), surrogates, private use
_NONCHAR = "\ufffe\uffff"          # not characters, and not allowed in XML


def bound(text, limit):
    """text cut to at most `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:max(0, limit - 1)] + "…"


def clean(text, limit=None):
    """Text without terminal escape sequences, control characters (newlines and tabs kept),
    invisible direction overrides, surrogates or non-characters: learner text cannot redraw a
    report or make an XML file unreadable.  With a limit, at most that many characters are
    read (the cut is marked with an ellipsis)."""
    if not isinstance(text, str):
        text = safe_str(text)
    if limit is not None:
        text = bound(text, limit)
    text = _ESCAPES.sub("", text)
    return "".join(ch for ch in text if ch in "\n\t" or (
        ch not in _NONCHAR and unicodedata.category(ch) not in _DROP))


def safe_str(value):
    """str(value), or a placeholder when it cannot be made (a str subclass may raise)."""
    try:
        return str.__str__(value) if isinstance(value, str) else str(value)
    except Exception:  # noqa: BLE001 - any object may refuse
        return f"<a {type(value).__name__[:MAX_NAME]} that cannot be printed>"


def name(value):
    """A learner-chosen name, cleaned, on one line, at most MAX_NAME characters."""
    return " ".join(clean(value, MAX_NAME).split())


def message(value):
    """A learner-derived message, cleaned, at most MAX_MESSAGE characters (lines kept)."""
    return clean(value, MAX_MESSAGE)


def clean_all(value, limit=MAX_MESSAGE):
    """Every string in a value of lists, tuples and dicts (keys too) cleaned and bounded."""
    if isinstance(value, str):
        return clean(value, limit)
    if isinstance(value, (list, tuple)):
        return type(value)(clean_all(v, limit) for v in value)
    if isinstance(value, dict):
        return {clean_all(k, limit): clean_all(v, limit) for k, v in value.items()}
    return value
