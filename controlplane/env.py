"""Typed readers for environment variables that fail loudly.

Every setting that comes from the environment goes through one of these, so a wrong or missing
value stops the process at start-up with a message naming the variable, instead of surfacing
later as an odd runtime error (after healthchecks' envbool/envint).
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} is required but not set.")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"The environment variable {name} must be a boolean (1/0, true/false, yes/no, on/off), got {value!r}."
    )


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"The environment variable {name} must be a whole number, got {value!r}.") from None
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise ImproperlyConfigured(
            f"The environment variable {name} must be between {minimum} and {maximum}, got {number}."
        )
    return number


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"The environment variable {name} must be a number, got {value!r}.") from None
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise ImproperlyConfigured(
            f"The environment variable {name} must be between {minimum} and {maximum}, got {number}."
        )
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name, default).strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(
            f"The environment variable {name} must be one of {', '.join(choices)}, got {value!r}."
        )
    return value
