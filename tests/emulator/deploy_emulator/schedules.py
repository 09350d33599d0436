"""EventBridge schedules that fire, as on AWS: a background thread watches moto's
EventBridge backends (every account and region, default bus: the only bus that takes a
ScheduleExpression) and, on each ENABLED scheduled rule's timetable, sends the
"Scheduled Event" to its targets. Lambda targets are invoked asynchronously through
`lambda_runtime` when the function's resource policy lets events.amazonaws.com invoke
it for that rule; otherwise nothing is invoked and stderr says why (AWS only counts a
FailedInvocation). Also owns the `rate(...)`/`cron(...)` grammar: PutRule refuses what
AWS refuses, and the control endpoints under /_deploy/events/:
  POST /_deploy/events/rules/{name}/fire[?bus=&account=&region=]  fires a rule now
      (409 when it is DISABLED, as it would not fire on AWS); answers its invocations
  GET  /_deploy/events/fired[?rule=NAME]                          recent firings
Targets: Lambda functions (alias or version ARNs too), with `Input` or `InputPath`;
other target kinds and `InputTransformer` are not delivered, and stderr says so.

Time: DEPLOY_EMULATOR_SCHEDULE_SCALE (S) shrinks every period. Each rule has its own
clock, anchored when the rule was created, re-enabled or given a new expression, that
runs 1/S times faster than real time: a rate rule fires at anchor + k·period·S (k ≥ 1;
AWS starts a rate when the rule is created), a cron rule at anchor + (T − anchor)·S
for each real occurrence T after the anchor. With S = 1 both are AWS's timetable. An
occurrence missed (emulator busy) is not caught up. The event's `time` is the moment
it fires (with S = 1, the scheduled minute)."""

import calendar
import fnmatch
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, unquote

from jsonpath_ng import parse as jsonpath
from moto.awslambda.models import lambda_backends
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.events.exceptions import ValidationException
from moto.events.models import EventsBackend, events_backends

from . import lambda_runtime

POLL = 0.25  # seconds between looks at the rules when nothing is due sooner
FIRED_KEPT = 500
MONTHS = {n: i for i, n in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)}
WEEKDAYS = {n: i for i, n in enumerate("SUN MON TUE WED THU FRI SAT".split(), 1)}
RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:([a-z0-9-]+):(\d{12}):function:([^:]+)(?::([^:]+))?$")


# ---- schedule expressions ------------------------------------------------------------

@dataclass(frozen=True)
class Rate:
    period: int  # seconds

    def next_after(self, moment, anchor):
        """The first occurrence strictly after `moment` (epoch seconds); rates count
        from `anchor`."""
        return anchor + (max(0, int((moment - anchor) // self.period)) + 1) * self.period


def _aws_weekday(day):
    """1 = Sunday … 7 = Saturday, as in AWS cron."""
    return (day.weekday() + 1) % 7 + 1


def _number(text, names):
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"`{text}` is not a number")
    return int(text)


def _values(text, lo, hi, names=()):
    """Sorted values of a field made of `*`, `A`, `A-B` (wrapping past the top), with
    optional `/STEP`, joined by commas."""
    names = dict(names)
    out = set()
    for part in text.split(","):
        span, slash, step = part.partition("/")
        if slash and not (step.isdigit() and int(step) > 0):
            raise ValueError(f"bad step in `{part}`")
        if span == "*":
            first, last = lo, hi
        elif "-" in span:
            first, last = (_number(x, names) for x in span.split("-", 1))
        else:
            first = _number(span, names)
            last = hi if slash else first
        if not (lo <= first <= hi and lo <= last <= hi):
            raise ValueError(f"`{part}` is outside {lo}-{hi}")
        span_values = list(range(first, last + 1)) if first <= last else list(range(first, hi + 1)) + list(range(lo, last + 1))
        out.update(span_values[:: int(step or 1)])
    return sorted(out)


def _nearest_weekday(year, month, day):
    last = calendar.monthrange(year, month)[1]
    if day > last:
        return []
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: the Friday before, unless that leaves the month
        return [day - 1 if day > 1 else day + 2]
    if weekday == 6:  # Sunday: the Monday after, unless that leaves the month
        return [day + 1 if day < last else day - 2]
    return [day]


def _days_of_month(text):
    """(year, month) -> that month's days matching a day-of-month field."""
    if text == "L":
        return lambda y, m: [calendar.monthrange(y, m)[1]]
    if m := re.fullmatch(r"(\d{1,2})W", text):
        day = int(m.group(1))
        if not 1 <= day <= 31:
            raise ValueError(f"`{text}` is outside 1-31")
        return lambda y, mo: _nearest_weekday(y, mo, day)
    days = _values(text, 1, 31)
    return lambda y, m: [d for d in days if d <= calendar.monthrange(y, m)[1]]


def _days_of_week(text):
    """(year, month) -> that month's days matching a day-of-week field."""
    def month(y, m):
        return [date(y, m, d) for d in range(1, calendar.monthrange(y, m)[1] + 1)]

    if m := re.fullmatch(r"([A-Za-z0-9]*)L", text):
        weekday = _number(m.group(1), WEEKDAYS) if m.group(1) else 7  # lone L: Saturday
        if not 1 <= weekday <= 7:
            raise ValueError(f"`{text}` is outside 1-7")
        return lambda y, mo: [max(d.day for d in month(y, mo) if _aws_weekday(d) == weekday)]
    if m := re.fullmatch(r"([A-Za-z0-9]+)#(\d+)", text):
        weekday, nth = _number(m.group(1), WEEKDAYS), int(m.group(2))
        if not (1 <= weekday <= 7 and 1 <= nth <= 5):
            raise ValueError(f"`{text}`: a weekday 1-7, then # and 1-5")
        return lambda y, mo: [d.day for d in month(y, mo) if _aws_weekday(d) == weekday][nth - 1:nth]
    weekdays = set(_values(text, 1, 7, WEEKDAYS))
    return lambda y, m: [d.day for d in month(y, m) if _aws_weekday(d) in weekdays]


class Cron:
    """AWS's six-field cron (minutes hours day-of-month month day-of-week year), UTC."""

    def __init__(self, text):
        fields = text.split()
        if len(fields) != 6:
            raise ValueError("cron takes six fields")
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise ValueError("exactly one of day-of-month and day-of-week must be `?`")
        self.minutes = _values(minute, 0, 59)
        self.hours = _values(hour, 0, 23)
        self.months = _values(month, 1, 12, MONTHS)
        self.years = _values(year, 1970, 2199)
        self.days = _days_of_month(dom) if dow == "?" else _days_of_week(dow)

    def next_time(self, after):
        """The first occurrence strictly after the datetime `after` (UTC), or None."""
        t = after.astimezone(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        # Each level skips what lies before `t` only while the levels above equal t's.
        for y in (y for y in self.years if y >= t.year):
            for mo in (mo for mo in self.months if (y, mo) >= (t.year, t.month)):
                for d in (d for d in self.days(y, mo) if (y, mo, d) >= (t.year, t.month, t.day)):
                    for h in (h for h in self.hours if (y, mo, d, h) >= (t.year, t.month, t.day, t.hour)):
                        for mi in self.minutes:
                            candidate = datetime(y, mo, d, h, mi, tzinfo=timezone.utc)
                            if candidate >= t:
                                return candidate
        return None

    def next_after(self, moment, anchor):
        found = self.next_time(datetime.fromtimestamp(moment, timezone.utc))
        return found.timestamp() if found else None


def parse_schedule(expression):
    """A Rate or a Cron; ValueError when AWS would refuse the expression."""
    if m := re.fullmatch(r"rate\((\d+) ([a-z]+)\)", expression):
        value, unit = int(m.group(1)), m.group(2)
        if value < 1 or unit.rstrip("s") not in RATE_UNITS or (value == 1) == unit.endswith("s"):
            raise ValueError("rate(VALUE UNIT): a positive value; unit minute|hour|day, plural when VALUE > 1")
        return Rate(value * RATE_UNITS[unit.rstrip("s")])
    if m := re.fullmatch(r"cron\((.*)\)", expression):
        return Cron(m.group(1))
    raise ValueError("neither rate(...) nor cron(...)")


# ---- timetables --------------------------------------------------------------------

@dataclass
class Timetable:
    expression: str
    anchor: float  # real epoch seconds: creation, re-enable or new expression
    enabled: bool = True

    def __post_init__(self):
        self.schedule = parse_schedule(self.expression)
        # The next occurrence on the rule's own clock (anchor + elapsed / scale).
        self.occurrence = self.schedule.next_after(self.anchor, self.anchor)

    @property
    def due(self):
        """The real time of the next occurrence, or None when there is none."""
        return None if self.occurrence is None else self.anchor + (self.occurrence - self.anchor) * _scale

    def advance(self, now):
        """Moves past the occurrence just fired and any missed up to `now`."""
        clock = self.anchor + (now - self.anchor) / _scale
        self.occurrence = self.schedule.next_after(max(clock, self.occurrence), self.anchor)


_scale = 1.0
_lock = threading.Lock()
_fired = deque(maxlen=FIRED_KEPT)
_timetables = {}  # (account, region, rule name) -> Timetable; only the thread touches it
_wake = threading.Event()
_stop = threading.Event()
_thread = None


def _scheduled_rules():
    for account, regions in list(events_backends.items()):
        for region, backend in list(regions.items()):
            bus = backend.event_buses.get("default")
            for rule in list(bus.rules.values()) if bus else []:
                if rule.scheduled_expression:
                    yield account, region, rule


def _follow(key, rule, now):
    """Keeps the rule's timetable current and fires the rule when it is due."""
    enabled = rule.state != "DISABLED"
    table = _timetables.get(key)
    # Expressions are valid: PutRule (patched in install) refuses the others.
    if table is None or table.expression != rule.scheduled_expression or (enabled and not table.enabled):
        table = _timetables[key] = Timetable(rule.scheduled_expression, now)
    table.enabled = enabled
    if enabled and table.due is not None and now >= table.due:
        fire(rule, table.due)
        table.advance(time.time())


def _tick():
    """One look at every scheduled rule; the seconds until the next one is due."""
    now = time.time()
    seen = set()
    for account, region, rule in _scheduled_rules():
        key = (account, region, rule.name)
        seen.add(key)
        try:
            _follow(key, rule, now)
        except Exception:  # one bad rule must not stop the others
            traceback.print_exc(file=sys.stderr)
    for key in set(_timetables) - seen:
        del _timetables[key]
    dues = [t.due for t in _timetables.values() if t.enabled and t.due is not None]
    return min([POLL] + [d - time.time() for d in dues])


def _run():
    while not _stop.is_set():
        try:
            wait = _tick()
        except Exception:  # e.g. moto's dicts changing under the scan: look again later
            traceback.print_exc(file=sys.stderr)
            wait = POLL
        _wake.wait(max(wait, 0.005))
        _wake.clear()


# ---- delivery ----------------------------------------------------------------------

def scheduled_event(rule, moment):
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": rule.account_id,
        "time": datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": rule.region_name,
        "resources": [rule.arn],
        "detail": {},
    }


def _target_input(target, event):
    """The bytes the target receives: the event, the constant `Input`, or what
    `InputPath` selects from the event."""
    if target.get("Input") is not None:
        return target["Input"].encode()
    if target.get("InputPath"):
        matches = jsonpath(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None).encode()
    return json.dumps(event).encode()


def _listed(value):
    return value if isinstance(value, list) else [value]


def _condition_holds(condition, rule):
    context = {"aws:sourcearn": rule.arn, "aws:sourceaccount": rule.account_id}
    for operator, tests in condition.items():
        for key, expected in tests.items():
            actual = context.get(key.lower())
            if actual is None:
                return False
            if operator in ("ArnLike", "StringLike"):
                if not any(fnmatch.fnmatchcase(actual, e) for e in _listed(expected)):
                    return False
            elif operator in ("ArnEquals", "StringEquals"):
                if actual not in _listed(expected):
                    return False
            else:
                return False
    return True


def _unqualified_latest(arn):
    return arn[: -len(":$LATEST")] if arn.endswith(":$LATEST") else arn


def _permission_refusal(rule, function_arn):
    """Why AWS would refuse events.amazonaws.com invoking `function_arn` for `rule`, or
    None. A statement must name the invoked ARN itself: a permission on the function
    does not cover its aliases, nor the reverse."""
    region, account, name, qualifier = LAMBDA_ARN.match(function_arn).groups()
    backend = lambda_backends[account][region]
    functions = [backend.get_function(name)]
    if qualifier:
        functions.append(backend.get_function(name, qualifier))
    statements = {id(s): s for fn in functions for s in fn.policy.statements}.values()
    invoked = _unqualified_latest(function_arn)
    for s in statements:
        principal = s.get("Principal")
        services = _listed(principal.get("Service", [])) if isinstance(principal, dict) else []
        if (
            s.get("Effect") == "Allow"
            and (principal == "*" or "events.amazonaws.com" in services)
            and any(fnmatch.fnmatchcase("lambda:invokefunction", a.lower()) for a in _listed(s.get("Action", [])))
            and any(fnmatch.fnmatchcase(invoked, _unqualified_latest(r)) for r in _listed(s.get("Resource", [])))
            and _condition_holds(s.get("Condition", {}), rule)
        ):
            return None
    return (f"the resource policy of {function_arn} does not allow events.amazonaws.com to "
            f"invoke it with SourceArn {rule.arn} (AWS records a FailedInvocation); add it with "
            f"lambda AddPermission")


def _deliver(rule, target, event):
    record = {"rule": rule.name, "rule_arn": rule.arn, "time": event["time"], "target": target.get("Id"),
              "arn": target.get("Arn"), "request_id": None, "ok": False, "why": None}
    arn = target.get("Arn", "")
    try:
        if not LAMBDA_ARN.match(arn):
            record["why"] = f"target {arn} is not a Lambda function; the emulator delivers only to Lambda"
        elif target.get("InputTransformer"):
            record["why"] = "InputTransformer is not supported by the emulator (Input and InputPath are)"
        elif (refusal := _permission_refusal(rule, arn)) is not None:
            record["why"] = refusal
        else:
            region, account = LAMBDA_ARN.match(arn).group(1, 2)
            result = lambda_runtime.invoke(account, region, arn, payload=_target_input(target, event), asynchronous=True)
            record.update(request_id=result["request_id"], ok=True)
    except Exception as e:  # moto's UnknownFunctionException, lambda_runtime.NotFound, ...
        record["why"] = f"{type(e).__name__}: {e}"
    if not record["ok"]:
        print(f"schedules: rule {rule.arn} target {record['target']}: not invoked: {record['why']}", file=sys.stderr, flush=True)
    with _lock:
        _fired.append(record)
    return record


def fire(rule, moment=None):
    """Sends the rule's Scheduled Event to each of its current targets; their records."""
    event = scheduled_event(rule, time.time() if moment is None else moment)
    return [_deliver(rule, target, event) for target in list(rule.targets)]


# ---- control endpoints -------------------------------------------------------------

def _reply(start_response, status, data):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def control(environ, start_response):
    path, method = environ.get("PATH_INFO", ""), environ["REQUEST_METHOD"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/_deploy/events/fired" and method == "GET":
        with _lock:
            records = [r for r in _fired if query.get("rule") in (None, r["rule"])]
        return _reply(start_response, "200 OK", {"fired": records})
    m = re.fullmatch(r"/_deploy/events/rules/([^/]+)/fire", path)
    if m and method == "POST":
        name = unquote(m.group(1))
        account = query.get("account", os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID))
        region = query.get("region", "us-east-1")
        try:
            bus = events_backends[account][region].event_buses.get(query.get("bus", "default"))
        except KeyError:  # a region moto does not know
            bus = None
        rule = bus.rules.get(name) if bus else None
        if rule is None:
            return _reply(start_response, "404 Not Found", {"message": f"rule {name} does not exist on bus {query.get('bus', 'default')} in {account}/{region}"})
        if not rule.scheduled_expression:
            return _reply(start_response, "400 Bad Request", {"message": f"rule {name} has no ScheduleExpression"})
        # A disabled rule does not fire on AWS: firing it here would hide that.
        if rule.state == "DISABLED":
            return _reply(start_response, "409 Conflict", {"message": f"rule {name} is DISABLED"})
        return _reply(start_response, "200 OK", {"rule": name, "rule_arn": rule.arn, "invocations": fire(rule)})
    return _reply(start_response, "404 Not Found", {"message": f"unknown control path {method} {path}"})


# ---- lifecycle ---------------------------------------------------------------------

def install():
    global _scale, _thread
    _scale = float(os.environ.get("DEPLOY_EMULATOR_SCHEDULE_SCALE", "1"))
    if _scale <= 0:
        raise ValueError("DEPLOY_EMULATOR_SCHEDULE_SCALE must be positive")
    put_rule, enable_rule = EventsBackend.put_rule, EventsBackend.enable_rule

    def checked_put_rule(self, name, *args, **kwargs):
        expression = kwargs.get("scheduled_expression")
        if expression:
            try:
                parse_schedule(expression)
            except ValueError:
                raise ValidationException("Parameter ScheduleExpression is not valid.")
        rule = put_rule(self, name, *args, **kwargs)
        _wake.set()  # a new schedule starts now, not at the next poll
        return rule

    def waking_enable_rule(self, *args, **kwargs):
        enabled = enable_rule(self, *args, **kwargs)
        _wake.set()
        return enabled

    EventsBackend.put_rule = checked_put_rule
    EventsBackend.enable_rule = waking_enable_rule
    _thread = threading.Thread(target=_run, name="schedules", daemon=True)
    _thread.start()


def shutdown():
    _stop.set()
    _wake.set()
    if _thread is not None:
        _thread.join(timeout=2)
