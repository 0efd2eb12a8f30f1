"""The rule engine: criteria as JSON, compiled to a Django ``Q`` and evaluated in Python with
the same result. Shared by segments, journey conditions and trigger filters.

Criteria::

    {"combinator": "AND", "rules": [
        {"field": "lifecycle_stage", "operator": "in", "value": ["MEMBER", "LAPSED"]},
        {"field": "last_activity_at", "operator": "lt", "value": {"days_ago": 30}},
        {"combinator": "OR", "rules": [
            {"field": "email_opt_in", "operator": "eq", "value": true},
            {"field": "tags", "operator": "contains", "value": "competitions"}]}]}

Fields are whitelisted and typed: apps register them in a ``FieldRegistry`` (customers
registers the profile's, marketing adds "member of segment"). ``parse`` validates criteria
and raises ``RuleError`` with the path of every offending part (``rules[2].value``);
``to_q`` compiles; ``evaluate`` decides for one object. Relative dates (``{"days_ago": 30}``,
``{"days_from_now": 7}``) and plain dates name a calendar day in the tenant's timezone,
resolved when the criteria run.

Semantics, the same in SQL and in Python: a comparison with an empty value is false
(``gt``, ``eq``, ``contains``...), ``neq`` is true for an empty value, ``isNull`` is true
for NULL (and for ``""`` on text fields, ``[]`` on tags).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Q

MAX_DEPTH = 5
MAX_RULES = 50
MAX_IN_VALUES = 500
MAX_RELATIVE_DAYS = 36_500
# Fixed dates and date-times in rules: far from the calendar's edges (years 1 and 9999),
# where "the next day" or a conversion to UTC overflows and PostgreSQL's offsets end.
MIN_DAY = date(1000, 1, 1)
MAX_DAY = date(9998, 12, 31)
MAX_UTC_OFFSET = timedelta(hours=16)


class T:
    """Field types."""

    STRING = "string"
    NUMBER = "number"
    MONEY = "money"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    ENUM = "enum"
    TAGS = "tags"
    ID = "id"


OPERATORS: dict[str, tuple[str, ...]] = {
    T.STRING: ("eq", "neq", "contains", "in", "isNull", "isNotNull"),
    T.NUMBER: ("eq", "neq", "gt", "gte", "lt", "lte", "in", "isNull", "isNotNull"),
    T.MONEY: ("eq", "neq", "gt", "gte", "lt", "lte", "isNull", "isNotNull"),
    T.DATE: ("eq", "neq", "gt", "gte", "lt", "lte", "isNull", "isNotNull"),
    T.DATETIME: ("eq", "neq", "gt", "gte", "lt", "lte", "isNull", "isNotNull"),
    T.BOOLEAN: ("eq", "neq", "isNull", "isNotNull"),
    T.ENUM: ("eq", "neq", "in", "isNull", "isNotNull"),
    T.TAGS: ("contains", "in", "isNull", "isNotNull"),
    T.ID: ("eq", "neq", "in", "isNull", "isNotNull"),
}
ALL_OPERATORS = sorted({op for ops in OPERATORS.values() for op in ops})
NO_VALUE = ("isNull", "isNotNull")


class RuleError(ValidationError):
    """Invalid criteria; ``message_dict`` maps paths (``rules[1].value``) to messages."""


@dataclass(frozen=True)
class Context:
    """When and where criteria run: relative dates resolve in ``tz`` at ``now``."""

    tz: tzinfo
    now: datetime
    tenant: Any = None

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def start_of(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz)


@dataclass(frozen=True)
class Computed:
    """A field computed from other tables: builds its own ``Q`` and Python value."""

    to_q: Callable[[str, Any, dict, Context], Q]
    evaluate: Callable[[Any, str, Any, dict, Context], bool]
    params: Callable[[Any, Any], dict] | None = None  # (raw params, context) -> clean params
    operators: tuple[str, ...] | None = None
    # For editors, the params it takes: ({"name", "type", "label", "required", "choices"}, ...)
    params_fields: tuple[dict, ...] = ()


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str
    lookup: str = ""  # ORM path on the subject model; defaults to the name
    choices: tuple[str, ...] = ()
    blank_is_null: bool = False  # text columns where "" means "not known"
    integer: bool = False  # whole numbers only (SQL would truncate 1.5 to 1)
    group: str = "Profile"
    computed: Computed | None = None

    @property
    def path(self) -> str:
        return self.lookup or self.name

    @property
    def operators(self) -> tuple[str, ...]:
        if self.computed and self.computed.operators:
            return self.computed.operators
        return OPERATORS[self.type]


@dataclass
class FieldRegistry:
    """The whitelisted fields of one subject (customer profiles)."""

    subject: str
    fields: dict[str, Field] = field(default_factory=dict)

    def register(self, *fields: Field) -> None:
        for item in fields:
            if item.type not in OPERATORS:
                raise ValueError(f"unknown field type {item.type!r}")
            self.fields[item.name] = item

    def describe(self) -> list[dict]:
        """For editors: every field with its type, operators and choices."""
        return [
            {
                "field": f.name,
                "label": f.label,
                "type": f.type,
                "group": f.group,
                "operators": list(f.operators),
                **({"choices": list(f.choices)} if f.choices else {}),
                **(
                    {"params": [dict(p) for p in f.computed.params_fields]}
                    if f.computed and f.computed.params_fields
                    else {}
                ),
            }
            for f in self.fields.values()
        ]


_registries: dict[str, FieldRegistry] = {}


def registry(subject: str = "customer") -> FieldRegistry:
    return _registries.setdefault(subject, FieldRegistry(subject))


# ----------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Rule:
    field: Field
    operator: str
    value: Any  # parsed: str, Decimal, bool, date, datetime, RelativeDay, list, UUID...
    params: dict


@dataclass(frozen=True)
class Group:
    combinator: str  # AND | OR
    rules: tuple[Rule | Group, ...]


@dataclass(frozen=True)
class Day:
    """A calendar day in the tenant's timezone: fixed, or relative to the run's today."""

    fixed: date | None = None
    offset: int = 0  # days after today (negative: ago)

    def resolve(self, ctx: Context) -> date:
        return self.fixed if self.fixed is not None else ctx.today + timedelta(days=self.offset)


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}
        self.count = 0

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path or "criteria", []).append(message)


def parse(raw: Any, reg: FieldRegistry | None = None, *, context: Any = None) -> Group:
    """Validate criteria; raises ``RuleError`` naming every bad part by its path."""
    reg = reg or registry()
    errors = _Errors()
    group = _parse_group(raw, "", reg, errors, 1, context)
    if errors.errors:
        raise RuleError(errors.errors)
    assert group is not None
    return group


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse_group(raw, path, reg, errors, depth, context) -> Group | None:
    if not isinstance(raw, dict):
        errors.add(path, 'Expected a group: {"combinator": "AND" | "OR", "rules": [...]}.')
        return None
    unknown = set(raw) - {"combinator", "rules"}
    for key in sorted(unknown):
        errors.add(_join(path, key), "Unknown key.")
    combinator = raw.get("combinator", "AND")
    if combinator not in ("AND", "OR"):
        errors.add(_join(path, "combinator"), "Use AND or OR.")
    rules = raw.get("rules")
    if not isinstance(rules, list) or not rules:
        errors.add(_join(path, "rules"), "Add at least one rule.")
        return None
    if depth > MAX_DEPTH:
        errors.add(path, f"Groups nest at most {MAX_DEPTH} deep.")
        return None
    parsed = []
    result: Group | Rule | None
    for index, item in enumerate(rules):
        errors.count += 1
        if errors.count > MAX_RULES:
            errors.add(_join(path, "rules"), f"At most {MAX_RULES} rules in all.")
            break
        item_path = f"{path}.rules[{index}]" if path else f"rules[{index}]"
        if isinstance(item, dict) and "rules" in item:
            result = _parse_group(item, item_path, reg, errors, depth + 1, context)
        else:
            result = _parse_rule(item, item_path, reg, errors, context)
        if result is not None:
            parsed.append(result)
    return Group(combinator, tuple(parsed))


def _parse_rule(raw, path, reg, errors, context) -> Rule | None:
    if not isinstance(raw, dict):
        errors.add(path, 'Expected a rule: {"field", "operator", "value"}.')
        return None
    for key in sorted(set(raw) - {"field", "operator", "value", "params"}):
        errors.add(_join(path, key), "Unknown key.")
    name = raw.get("field")
    spec = reg.fields.get(name) if isinstance(name, str) else None
    if spec is None:
        errors.add(_join(path, "field"), f"Unknown field {name!r}.")
        return None
    operator = raw.get("operator")
    if not isinstance(operator, str) or operator not in spec.operators:
        errors.add(
            _join(path, "operator"),
            f"{operator!r} does not apply to {spec.name} ({spec.type}); use one of "
            f"{', '.join(spec.operators)}.",
        )
        return None
    params: dict = {}
    if spec.computed and spec.computed.params:
        try:
            params = spec.computed.params(raw.get("params") or {}, context)
        except ValidationError as exc:
            for message in exc.messages:
                errors.add(_join(path, "params"), message)
            return None
    elif "params" in raw:
        errors.add(_join(path, "params"), "This field takes no params.")
        return None
    value_path = _join(path, "value")
    if operator in NO_VALUE:
        if raw.get("value") is not None:
            errors.add(value_path, f"{operator} takes no value.")
            return None
        return Rule(spec, operator, None, params)
    if "value" not in raw or raw["value"] is None:
        errors.add(value_path, "A value is required.")
        return None
    try:
        if operator == "in":
            values = raw["value"]
            if not isinstance(values, list) or not values:
                raise ValidationError("Expected a non-empty list.")
            if len(values) > MAX_IN_VALUES:
                raise ValidationError(f"At most {MAX_IN_VALUES} values.")
            value: Any = tuple(_value(spec, v, context) for v in values)
        else:
            value = _value(spec, raw["value"], context)
    except ValidationError as exc:
        for message in exc.messages:
            errors.add(value_path, message)
        return None
    return Rule(spec, operator, value, params)


def _value(spec: Field, raw: Any, context: Any) -> Any:
    kind = spec.type
    if kind in (T.STRING, T.TAGS):
        if not isinstance(raw, str) or not raw.strip():
            raise ValidationError("Expected a non-empty text.")
        if len(raw) > 255:
            raise ValidationError("At most 255 characters.")
        if "\x00" in raw:
            raise ValidationError("NUL characters (\\u0000) are not allowed.")
        return raw
    if kind in (T.NUMBER, T.MONEY):
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValidationError("Expected a number.")
        try:
            number = Decimal(str(raw))
        except InvalidOperation as exc:
            raise ValidationError("Expected a number.") from exc
        if not number.is_finite() or abs(number) > Decimal("1e12"):
            raise ValidationError("Expected a finite number.")
        if spec.integer and number != number.to_integral_value():
            raise ValidationError("Expected a whole number.")
        return int((number * 100).to_integral_value()) if kind == T.MONEY else number
    if kind == T.BOOLEAN:
        if not isinstance(raw, bool):
            raise ValidationError("Expected true or false.")
        return raw
    if kind == T.ENUM:
        if raw not in spec.choices:
            raise ValidationError(f"Expected one of {', '.join(spec.choices)}.")
        return raw
    if kind == T.ID:
        try:
            return UUID(str(raw))
        except ValueError as exc:
            raise ValidationError("Expected an id (UUID).") from exc
    if kind in (T.DATE, T.DATETIME):
        return _temporal(kind, raw)
    raise ValidationError("Unsupported value.")  # pragma: no cover


def _temporal(kind: str, raw: Any) -> Day | datetime:
    if isinstance(raw, dict):
        if len(raw) != 1 or next(iter(raw)) not in ("days_ago", "days_from_now"):
            raise ValidationError('Use {"days_ago": N} or {"days_from_now": N}.')
        key, days = next(iter(raw.items()))
        if (
            isinstance(days, bool)
            or not isinstance(days, int)
            or not 0 <= days <= MAX_RELATIVE_DAYS
        ):
            raise ValidationError(f"Days must be a whole number from 0 to {MAX_RELATIVE_DAYS}.")
        return Day(offset=-days if key == "days_ago" else days)
    if not isinstance(raw, str):
        raise ValidationError("Expected a date (YYYY-MM-DD) or a relative date.")
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            _in_range(day)
            return Day(fixed=day)
        if kind == T.DATE:
            raise ValueError
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        expected = "YYYY-MM-DD" if kind == T.DATE else "YYYY-MM-DD or an ISO date-time"
        raise ValidationError(f"Expected {expected}.") from exc
    if moment.tzinfo is None:
        raise ValidationError("Give the date-time a UTC offset (e.g. Z or +02:00).")
    offset = moment.utcoffset()
    if offset is not None and abs(offset) >= MAX_UTC_OFFSET:
        raise ValidationError("The UTC offset must be between -15:59 and +15:59.")
    _in_range(moment.date())
    return moment


def _in_range(day: date) -> None:
    if not MIN_DAY <= day <= MAX_DAY:
        raise ValidationError(f"Expected a date from {MIN_DAY} to {MAX_DAY}.")


# ----------------------------------------------------------------------------- compile to Q


def to_q(criteria: Group, ctx: Context) -> Q:
    parts = [to_q(r, ctx) if isinstance(r, Group) else _rule_q(r, ctx) for r in criteria.rules]
    result = parts[0]
    for part in parts[1:]:
        result = (result & part) if criteria.combinator == "AND" else (result | part)
    return result


def _bounds(rule: Rule, ctx: Context, value: Any) -> tuple[Any, Any] | None:
    """For a day on a date-time field: [start of day, start of next day)."""
    if isinstance(value, Day) and rule.field.type == T.DATETIME:
        day = value.resolve(ctx)
        return ctx.start_of(day), ctx.start_of(day + timedelta(days=1))
    return None


def _concrete(value: Any, ctx: Context) -> Any:
    return value.resolve(ctx) if isinstance(value, Day) else value


def _rule_q(rule: Rule, ctx: Context) -> Q:
    spec, op, value = rule.field, rule.operator, rule.value
    if spec.computed:
        return spec.computed.to_q(op, value, rule.params, ctx)
    path = spec.path
    if op == "isNull":
        return _null_q(spec)
    if op == "isNotNull":
        return ~_null_q(spec)
    if spec.type == T.TAGS:
        if op == "contains":
            return Q(**{f"{path}__contains": [value]})
        return Q(**{f"{path}__overlap": list(value)})
    bounds = _bounds(rule, ctx, value)
    if bounds is not None:
        start, end = bounds
        day = Q(**{f"{path}__gte": start, f"{path}__lt": end})
        return {
            "eq": day,
            "neq": ~day,
            "gt": Q(**{f"{path}__gte": end}),
            "gte": Q(**{f"{path}__gte": start}),
            "lt": Q(**{f"{path}__lt": start}),
            "lte": Q(**{f"{path}__lt": end}),
        }[op]
    if op == "in":
        return Q(**{f"{path}__in": [_concrete(v, ctx) for v in value]})
    value = _concrete(value, ctx)
    if op == "eq":
        return Q(**{path: value})
    if op == "neq":
        return ~Q(**{path: value})
    if op == "contains":
        return Q(**{f"{path}__icontains": value})
    return Q(**{f"{path}__{op}": value})


def _null_q(spec: Field) -> Q:
    if spec.type == T.TAGS:
        return Q(**{spec.path: []})
    q = Q(**{f"{spec.path}__isnull": True})
    if spec.blank_is_null:
        q |= Q(**{spec.path: ""})
    return q


# ----------------------------------------------------------------------------- evaluate


def evaluate(criteria: Group, obj: Any, ctx: Context) -> bool:
    results = (
        evaluate(r, obj, ctx) if isinstance(r, Group) else _rule_eval(r, obj, ctx)
        for r in criteria.rules
    )
    return all(results) if criteria.combinator == "AND" else any(results)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("__"):
        obj = None if obj is None else getattr(obj, part)
    return obj


def _is_null(spec: Field, actual: Any) -> bool:
    if spec.type == T.TAGS:
        return not actual
    return actual is None or (spec.blank_is_null and actual == "")


def _as_aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _rule_eval(rule: Rule, obj: Any, ctx: Context) -> bool:
    spec, op, value = rule.field, rule.operator, rule.value
    if spec.computed:
        return spec.computed.evaluate(obj, op, value, rule.params, ctx)
    actual = _as_aware(_get(obj, spec.path))
    if op == "isNull":
        return _is_null(spec, actual)
    if op == "isNotNull":
        return not _is_null(spec, actual)
    if spec.type == T.TAGS:
        tags = set(actual or ())
        return value in tags if op == "contains" else bool(tags & set(value))
    if isinstance(actual, float):
        actual = Decimal(str(actual))
    bounds = _bounds(rule, ctx, value)
    if bounds is not None:
        start, end = bounds
        if actual is None:
            return op == "neq"
        return {
            "eq": start <= actual < end,
            "neq": not (start <= actual < end),
            "gt": actual >= end,
            "gte": actual >= start,
            "lt": actual < start,
            "lte": actual < end,
        }[op]
    if op == "in":
        return actual is not None and actual in {_concrete(v, ctx) for v in value}
    value = _concrete(value, ctx)
    if op == "neq":
        return actual != value
    if actual is None:
        return False
    if op == "eq":
        return actual == value
    if op == "contains":
        return str(value).upper() in str(actual).upper()
    return {
        "gt": actual > value,
        "gte": actual >= value,
        "lt": actual < value,
        "lte": actual <= value,
    }[op]


__all__ = [
    "OPERATORS",
    "Computed",
    "Context",
    "Day",
    "Field",
    "FieldRegistry",
    "Group",
    "Rule",
    "RuleError",
    "T",
    "evaluate",
    "parse",
    "registry",
    "to_q",
]
