"""What the CI suites share: where the workflow templates are, the workflow_steps tool
(tests/tools/workflow_steps.py) loaded as a module, and event payloads as GitHub sends
them (only the fields workflows read)."""

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "ci" / "github"
WORKFLOWS = sorted(TEMPLATES.glob("*.yml"))
WORKFLOW_STEPS = ROOT / "tests" / "tools" / "workflow_steps.py"

_spec = importlib.util.spec_from_file_location("workflow_steps", WORKFLOW_STEPS)
workflow_steps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(workflow_steps)

REPOSITORY = {"full_name": "acme/trivia", "owner": {"login": "acme"}}
HEAD_SHA = "b" * 40


def load(name):
    with open(TEMPLATES / name) as f:
        return yaml.safe_load(f)


def pull_request_event(action, number=7, fork=False):
    head_repository = {"full_name": "someone/trivia"} if fork else REPOSITORY
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "merge_commit_sha": "c" * 40,
            "head": {"sha": HEAD_SHA, "ref": "feature", "repo": head_repository},
            "base": {"ref": "main", "repo": REPOSITORY},
        },
        "repository": REPOSITORY,
    }


def push_event(branch="main"):
    return {"ref": f"refs/heads/{branch}", "after": "d" * 40, "commits": [],
            "head_commit": {"id": "d" * 40}, "repository": REPOSITORY}


def schedule_event():
    return {"schedule": "23 3 * * *", "repository": REPOSITORY}


def dispatch_event(**inputs):
    return {"inputs": inputs, "ref": "refs/heads/main", "repository": REPOSITORY}
