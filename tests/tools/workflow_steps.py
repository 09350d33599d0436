#!/usr/bin/env python3
"""The `run:` steps a GitHub Actions workflow executes for one event, in order, as JSON,
so that tests can execute a workflow's own scripts outside GitHub.

    workflow_steps.py WORKFLOW EVENT_JSON [CONTEXT_JSON]

EVENT_JSON is a file holding the event's payload (what $GITHUB_EVENT_PATH holds). The
event's name comes from the payload's shape (pull_request, schedule, workflow_dispatch,
push) unless CONTEXT_JSON names it. CONTEXT_JSON (a file, or JSON text) holds what a
payload does not:

    {"github": {"event_name": "push", ...}, "vars": {"DEPLOY_STATE_URL": "s3://b/p"},
     "secrets": {}, "steps": {"ID": {"outputs": {...}}}, "needs": {"JOB": {"outputs": {...}}}}

Prints {"event", "steps": [{"job", "name", "run", "env", "working-directory", "shell"}],
"skipped": [{"job", "name", "uses"}]}: jobs in `needs` order (file order among equals),
the steps whose `if:` holds, with `${{ … }}` substituted (unknown values are empty) and
workflow, job and step `env:` merged in that order. Steps with `uses:` do not run here;
they are listed under "skipped". Every step is taken to succeed, and an `actions/cache`
step to have hit unless CONTEXT_JSON gives its outputs. `shell` is GitHub's name for
the shell (`bash` runs `bash --noprofile --norc -eo pipefail FILE`).

Expressions: literals, the contexts above plus `env`, `inputs` and `runner`, `a.b`,
`a['b']`, `!`, `==`, `!=`, `&&`, `||`, parentheses, `always()`, `success()`,
`failure()`, `cancelled()`, `contains()`, `startsWith()`, `endsWith()`. Anything else
stops with an error rather than guessing.
"""

import fnmatch
import json
import math
import re
import sys

import yaml

PULL_REQUEST_DEFAULT_TYPES = ["opened", "synchronize", "reopened"]
STATUS_FUNCTIONS = re.compile(r"\b(always|success|failure|cancelled)\s*\(")
TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||[!()\[\].,])|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


class ExpressionError(Exception):
    pass


# ---- values, with GitHub's coercions ----


def number(v):
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v.strip()) if v.strip() else 0
        except ValueError:
            return math.nan
    return math.nan


def truthy(v):
    if isinstance(v, float) and math.isnan(v):
        return False
    return v not in (None, False, 0, "")


def equal(a, b):
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    same_kind = type(a) is type(b) or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool)
    )
    if not same_kind:
        a, b = number(a), number(b)
    return a == b


def text(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def member(obj, key):
    """`obj.key`: contexts' keys are case-insensitive; a missing one is null."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for k, v in obj.items():
            if isinstance(k, str) and k.casefold() == str(key).casefold():
                return v
        return None
    if isinstance(obj, list) and isinstance(key, (int, float)) and 0 <= key < len(obj):
        return obj[int(key)]
    return None


# ---- expressions ----


class Expression:
    """Evaluates one expression while parsing it (expressions have no side effects)."""

    def __init__(self, source, contexts, succeeded=True):
        self.source = source
        self.contexts = contexts
        self.succeeded = succeeded
        self.tokens = self.tokenize(source)
        self.at = 0

    def tokenize(self, source):
        tokens, at = [], 0
        while at < len(source):
            if not source[at:].strip():
                break
            m = TOKEN.match(source, at)
            if not m or m.end() == at:
                raise ExpressionError(f"cannot read `{source[at:]}` in `{source}`")
            kind = m.lastgroup
            tokens.append((kind, m.group(kind)))
            at = m.end()
        return tokens

    def peek(self):
        return self.tokens[self.at] if self.at < len(self.tokens) else (None, None)

    def take(self, op=None):
        token = self.peek()
        if op is not None and token != ("op", op):
            raise ExpressionError(f"expected `{op}` in `{self.source}`")
        self.at += 1
        return token

    def value(self):
        v = self.disjunction()
        if self.at != len(self.tokens):
            raise ExpressionError(f"unexpected `{self.peek()[1]}` in `{self.source}`")
        return v

    def disjunction(self):
        v = self.conjunction()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.conjunction()
            v = v if truthy(v) else right
        return v

    def conjunction(self):
        v = self.comparison()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.comparison()
            v = right if truthy(v) else v
        return v

    def comparison(self):
        v = self.unary()
        if self.peek() in (("op", "=="), ("op", "!=")):
            op = self.take()[1]
            same = equal(v, self.unary())
            v = same if op == "==" else not same
        return v

    def unary(self):
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        return self.postfix()

    def postfix(self):
        v = self.primary()
        while self.peek() in (("op", "."), ("op", "[")):
            if self.take()[1] == ".":
                kind, name = self.take()
                if kind != "name":
                    raise ExpressionError(f"expected a property name in `{self.source}`")
                v = member(v, name)
            else:
                key = self.disjunction()
                self.take("]")
                v = member(v, key)
        return v

    def primary(self):
        kind, token = self.take()
        if kind == "string":
            return token[1:-1].replace("''", "'")
        if kind == "number":
            return float(token)
        if token == "(":
            v = self.disjunction()
            self.take(")")
            return v
        if kind == "name":
            if self.peek() == ("op", "("):
                return self.call(token)
            if token in ("true", "false"):
                return token == "true"
            if token == "null":
                return None
            if token not in self.contexts:
                raise ExpressionError(f"unknown context `{token}` in `{self.source}`")
            return self.contexts[token]
        raise ExpressionError(f"unexpected `{token}` in `{self.source}`")

    def call(self, function):
        self.take("(")
        args = []
        while self.peek() != ("op", ")"):
            args.append(self.disjunction())
            if self.peek() == ("op", ","):
                self.take()
        self.take(")")
        lowered = function.lower()
        if lowered in ("always", "success", "failure", "cancelled") and not args:
            return {"always": True, "success": self.succeeded, "failure": not self.succeeded,
                    "cancelled": False}[lowered]
        strings = [text(a).casefold() for a in args]
        if lowered == "contains" and len(args) == 2:
            if isinstance(args[0], list):
                return any(equal(item, args[1]) for item in args[0])
            return strings[1] in strings[0]
        if lowered == "startswith" and len(args) == 2:
            return strings[0].startswith(strings[1])
        if lowered == "endswith" and len(args) == 2:
            return strings[0].endswith(strings[1])
        raise ExpressionError(f"unsupported function `{function}` in `{self.source}`")


def evaluate(source, contexts, succeeded=True):
    return Expression(source, contexts, succeeded).value()


def condition(source, contexts, succeeded=True):
    """An `if:`: `${{ }}` optional; `success() &&` implied without a status function."""
    if source is None:
        return succeeded
    if isinstance(source, bool):
        return source and succeeded
    source = str(source).strip()
    if source.startswith("${{") and source.endswith("}}"):
        source = source[3:-2]
    held = truthy(evaluate(source, contexts, succeeded))
    return held if STATUS_FUNCTIONS.search(source) else held and succeeded


def substitute(value, contexts):
    """A string with every `${{ … }}` replaced by its value as text."""
    if value is None:
        return None
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: text(evaluate(m.group(1), contexts)), text(value))


# ---- the workflow ----


def event_name_of(event):
    for key, name in (("pull_request", "pull_request"), ("schedule", "schedule"),
                      ("inputs", "workflow_dispatch"), ("commits", "push")):
        if key in event:
            return name
    raise SystemExit("cannot tell the event's name from its payload: give github.event_name in CONTEXT_JSON")


def triggered(on, name, event):
    """Whether `on:` runs the workflow for this event."""
    if isinstance(on, str):
        on = [on]
    if isinstance(on, list):
        return name in on
    if name not in on:
        return False
    filters = on[name] if isinstance(on[name], dict) else {}
    unsupported = set(filters) - {"types", "branches", "inputs"}
    if unsupported:
        raise SystemExit(f"unsupported `on.{name}` filters: {', '.join(sorted(unsupported))}")
    types = filters.get("types", PULL_REQUEST_DEFAULT_TYPES if name == "pull_request" else None)
    if types is not None and event.get("action") not in types:
        return False
    if "branches" in filters:
        if name == "pull_request":
            branch = event["pull_request"]["base"]["ref"]
        else:
            branch = event.get("ref", "").removeprefix("refs/heads/")
        return any(fnmatch.fnmatchcase(branch, p) for p in filters["branches"])
    return True


def in_needs_order(jobs):
    ordered, placed = [], set()
    while len(ordered) < len(jobs):
        ready = [j for j, job in jobs.items() if j not in placed
                 and set(needs_of(job)) <= placed]
        if not ready:
            raise SystemExit("jobs' `needs` form a cycle or name a missing job")
        ordered.append(ready[0])
        placed.add(ready[0])
    return ordered


def needs_of(job):
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else needs


def github_context(name, event, overrides):
    pr = event.get("pull_request") or {}
    repository = event.get("repository") or {}
    context = {
        "event": event,
        "event_name": name,
        "sha": pr.get("merge_commit_sha") or event.get("after")
        or (event.get("head_commit") or {}).get("id", ""),
        "ref": event.get("ref") or (f"refs/pull/{event['number']}/merge" if "number" in event else ""),
        "repository": repository.get("full_name", ""),
        "repository_owner": (repository.get("owner") or {}).get("login", ""),
        "actor": (event.get("sender") or {}).get("login", ""),
        "base_ref": (pr.get("base") or {}).get("ref", ""),
        "head_ref": (pr.get("head") or {}).get("ref", ""),
    }
    context.update(overrides)
    return context


def substituted_env(env, contexts):
    return {k: substitute(v, contexts) for k, v in (env or {}).items()}


def run_steps(workflow, event, context=None):
    context = context or {}
    name = (context.get("github") or {}).get("event_name") or event_name_of(event)
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    result = {"event": name, "steps": [], "skipped": []}
    if not triggered(on, name, event):
        return result
    base = {
        "github": github_context(name, event, context.get("github") or {}),
        "vars": context.get("vars") or {},
        "secrets": context.get("secrets") or {},
        "inputs": event.get("inputs") or {},
        "runner": {"os": "Linux", "arch": "X64", "temp": "", "tool_cache": ""},
    }
    workflow_env = substituted_env(workflow.get("env"), {**base, "env": {}})
    jobs = workflow.get("jobs") or {}
    needs = {}
    for job_id in in_needs_order(jobs):
        job = jobs[job_id]
        if "strategy" in job or "uses" in job:
            raise SystemExit(f"job `{job_id}`: matrices and reusable workflows are not supported")
        given = context.get("needs") or {}
        contexts = {**base, "needs": {
            n: {"result": needs[n], "outputs": (given.get(n) or {}).get("outputs") or {}}
            for n in needs_of(job)}}
        ran = condition(job.get("if"), contexts,
                        succeeded=all(needs[n] == "success" for n in needs_of(job)))
        needs[job_id] = "success" if ran else "skipped"
        if not ran:
            continue
        env = {**workflow_env, **substituted_env(job.get("env"), {**contexts, "env": workflow_env})}
        defaults = {**((workflow.get("defaults") or {}).get("run") or {}),
                    **((job.get("defaults") or {}).get("run") or {})}
        steps = {}
        for step in job.get("steps") or []:
            contexts_now = {**contexts, "steps": steps, "env": env}
            ran = condition(step.get("if"), contexts_now)
            outputs = ((context.get("steps") or {}).get(step.get("id")) or {}).get("outputs")
            if outputs is None and str(step.get("uses", "")).startswith("actions/cache@"):
                outputs = {"cache-hit": "true"}
            if step.get("id"):
                outcome = "success" if ran else "skipped"
                steps[step["id"]] = {"outputs": outputs or {}, "outcome": outcome,
                                     "conclusion": outcome}
            if not ran:
                continue
            if "uses" in step:
                result["skipped"].append({"job": job_id, "name": step.get("name", step["uses"]),
                                          "uses": step["uses"]})
                continue
            step_env = {**env, **substituted_env(step.get("env"), contexts_now)}
            result["steps"].append({
                "job": job_id,
                "name": step.get("name") or "Run " + str(step["run"]).strip().splitlines()[0],
                "run": substitute(step["run"], {**contexts_now, "env": step_env}),
                "env": step_env,
                "working-directory": step.get("working-directory", defaults.get("working-directory")),
                "shell": step.get("shell", defaults.get("shell", "bash")),
            })
    return result


def load_json(argument):
    """A JSON file, or JSON text."""
    if argument.lstrip().startswith("{"):
        return json.loads(argument)
    with open(argument) as f:
        return json.load(f)


def main(argv):
    if len(argv) not in (3, 4):
        raise SystemExit(__doc__.split("\n\n")[1])
    with open(argv[1]) as f:
        workflow = yaml.safe_load(f)
    event = load_json(argv[2])
    context = load_json(argv[3]) if len(argv) == 4 else {}
    try:
        result = run_steps(workflow, event, context)
    except ExpressionError as e:
        raise SystemExit(f"{argv[1]}: {e}")
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv)
