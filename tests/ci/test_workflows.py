"""The CI workflow templates (templates/ci/github): actionlint finds nothing; scripts
take no `${{ }}`; AWS only through OIDC; one run per environment at a time; the deploy
binary cached; actions pinned. Then their own `run:` steps, extracted with
tests/tools/workflow_steps.py and executed as the runner would, against a stand-in
`deploy` that records its arguments: the commands, the comment bodies, the fallback to
a sweep, the outputs later steps and jobs read."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap
import unittest
from pathlib import Path

from support import (HEAD_SHA, TEMPLATES, WORKFLOWS, dispatch_event, load, pull_request_event,
                     push_event, schedule_event, workflow_steps)

AWS_CREDENTIALS = "aws-actions/configure-aws-credentials@"
CACHE = "actions/cache@"


def jobs(name):
    return load(name)["jobs"].items()


def runs_deploy(job):
    return any(re.search(r"\bdeploy ", s.get("run", "")) for s in job["steps"])


class ActionlintTest(unittest.TestCase):
    def actionlint(self, *files):
        command = os.environ.get("ACTIONLINT")
        if not command:
            self.fail('ACTIONLINT is not set: run tests/run, or eval "$(tests/tools/install)" first')
        return subprocess.run([command, *map(str, files)], capture_output=True, text=True, timeout=120)

    def test_the_workflows_have_no_findings(self):
        self.assertEqual(len(WORKFLOWS), 3, WORKFLOWS)
        run = self.actionlint(*WORKFLOWS)
        self.assertEqual((run.returncode, run.stdout + run.stderr), (0, ""))

    def test_a_broken_workflow_has_findings(self):
        # The linter really runs: an injectable script and a misspelt step id.
        broken = (TEMPLATES / "preview.yml").read_text().replace(
            'run: deploy validate -e "$ENVIRONMENT" --format github',
            "run: echo ${{ github.event.pull_request.title }}").replace(
            "steps.plan.outcome", "steps.plna.outcome")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp, "preview.yml")
            path.write_text(broken)
            run = self.actionlint(path)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn('"github.event.pull_request.title" is potentially untrusted', run.stdout)
        self.assertIn('property "plna" is not defined', run.stdout)


class WorkflowRulesTest(unittest.TestCase):
    def test_scripts_take_their_inputs_from_env(self):
        for path in WORKFLOWS:
            for job_id, job in jobs(path.name):
                for step in job["steps"]:
                    self.assertNotIn("${{", step.get("run", ""), f"{path.name} {job_id}: {step.get('name')}")

    def test_scripts_of_more_than_one_line_are_strict(self):
        for path in WORKFLOWS:
            for _, job in jobs(path.name):
                for step in job["steps"]:
                    lines = step.get("run", "").strip().splitlines()
                    if len(lines) > 1:
                        self.assertEqual(lines[0], "set -euo pipefail", f"{path.name}: {step.get('name')}")

    def test_aws_only_through_oidc_and_a_role_from_a_repository_variable(self):
        for path in WORKFLOWS:
            workflow = load(path.name)
            self.assertEqual(workflow["permissions"], {}, path.name)
            self.assertEqual(workflow["env"]["DEPLOY_STATE_URL"], "${{ vars.DEPLOY_STATE_URL }}")
            for job_id, job in jobs(path.name):
                credentials = [s for s in job["steps"] if s.get("uses", "").startswith(AWS_CREDENTIALS)]
                if runs_deploy(job):
                    self.assertEqual(len(credentials), 1, f"{path.name} {job_id}")
                for step in credentials:
                    self.assertEqual(job["permissions"].get("id-token"), "write", f"{path.name} {job_id}")
                    self.assertEqual(step["with"], {"role-to-assume": "${{ vars.DEPLOY_ROLE_ARN }}",
                                                    "aws-region": "${{ vars.AWS_REGION }}"})

    def test_checkouts_leave_no_token_for_the_code_they_build(self):
        for path in WORKFLOWS:
            for job_id, job in jobs(path.name):
                for step in job["steps"]:
                    if step.get("uses", "").startswith("actions/checkout@"):
                        self.assertIs(step["with"]["persist-credentials"], False, f"{path.name} {job_id}")

    def test_one_run_per_environment_never_cancelled(self):
        groups = {p.name: load(p.name)["concurrency"] for p in WORKFLOWS}
        self.assertEqual(groups, {
            "gc.yml": {"group": "deploy-gc", "cancel-in-progress": False},
            "preview.yml": {"group": "deploy-pr-${{ github.event.number }}", "cancel-in-progress": False},
            "production.yml": {"group": "deploy-prod", "cancel-in-progress": False},
        })
        self.assertEqual(load("preview.yml")["env"]["ENVIRONMENT"], "pr-${{ github.event.number }}")
        self.assertEqual(load("production.yml")["env"]["ENVIRONMENT"], "prod")

    def test_the_deploy_binary_is_cached_and_built_only_on_a_miss(self):
        for path in WORKFLOWS:
            for job_id, job in jobs(path.name):
                if not runs_deploy(job):
                    continue
                where = f"{path.name} {job_id}"
                steps = job["steps"]
                first_deploy = next(i for i, s in enumerate(steps)
                                    if re.search(r"\bdeploy ", s.get("run", "")))
                cache = [(i, s) for i, s in enumerate(steps[:first_deploy])
                         if s.get("uses", "").startswith(CACHE)]
                self.assertEqual(len(cache), 1, where)
                at, cache = cache[0]
                self.assertEqual(cache["with"]["path"], "target/release/deploy", where)
                self.assertRegex(cache["with"]["key"], r"hashFiles\('Cargo\.lock', .*'src/\*\*'", where)
                build = steps[at + 1]
                self.assertEqual(build["run"], "cargo build --release --locked", where)
                self.assertEqual(build["if"], f"steps.{cache['id']}.outputs.cache-hit != 'true'", where)
                self.assertIn("target/release", steps[at + 2]["run"])
                self.assertIn("$GITHUB_PATH", steps[at + 2]["run"])

    def test_actions_are_pinned_to_a_commit_with_its_version(self):
        for path in WORKFLOWS:
            for line in path.read_text().splitlines():
                if "uses:" in line:
                    self.assertRegex(line, r"uses: [\w-]+/[\w-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$", path.name)

    def test_production_applies_behind_the_protected_environment(self):
        workflow = load("production.yml")
        on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
        self.assertEqual(on, {"push": {"branches": ["main"]}})
        apply = workflow["jobs"]["apply"]
        self.assertEqual((apply["needs"], apply["environment"]["name"]), ("plan", "production"))
        self.assertNotIn("environment", workflow["jobs"]["plan"])



class PolicyTest(unittest.TestCase):
    def policy(self, name):
        with open(TEMPLATES / name) as f:
            return json.load(f)

    def test_only_this_repositorys_pull_requests_main_and_production_assume_the_role(self):
        [statement] = self.policy("iam-trust-policy.json")["Statement"]
        self.assertEqual(statement["Action"], "sts:AssumeRoleWithWebIdentity")
        self.assertEqual(statement["Condition"], {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": [
                "repo:OWNER/REPO:pull_request", "repo:OWNER/REPO:ref:refs/heads/main",
                "repo:OWNER/REPO:environment:production"]}})

    def test_the_permissions_fit_an_inline_role_policy_and_scope_what_deploy_names(self):
        policy = self.policy("iam-permissions-policy.json")
        # IAM counts characters without whitespace; a role's inline policies hold 10,240.
        self.assertLess(len("".join(json.dumps(policy, separators=(",", ":")).split())), 10240)
        by_sid = {s["Sid"]: s for s in policy["Statement"]}
        self.assertEqual(by_sid["StateObjects"]["Resource"], "arn:aws:s3:::BUCKET/PREFIX/*")
        self.assertEqual(by_sid["ExecutionRolesOnlyToLambda"]["Condition"],
                         {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}})
        for sid in ("Caches", "Parameters", "ExecutionRoles", "Functions", "Schedules", "LogGroups"):
            resources = by_sid[sid]["Resource"]
            for resource in [resources] if isinstance(resources, str) else resources:
                self.assertIn("PROJECT-", resource, sid)


URL = "https://abc123.execute-api.us-east-1.amazonaws.com/preview/"
FAKE_DEPLOY = r"""#!/usr/bin/env bash
# Stands in for deploy: records its arguments, prints what the workflows read.
printf '%s\n' "$*" >> "$FAKE_DEPLOY_LOG"
case "$1" in
  plan)
    printf '<!-- deploy:plan %s -->\n**Plan:** 3 to add, 0 to change, 0 to destroy.\n' "$3"
    exit "${FAKE_PLAN_EXIT:-0}" ;;
  smoke)
    printf '| check | result |\n|---|---|\n| health | %s |\n' "${FAKE_SMOKE_RESULT:-ok}"
    exit "${FAKE_SMOKE_EXIT:-0}" ;;
  output) echo "$FAKE_URL" ;;
  status) printf '{"environment": "%s", "applied": %s}\n' "$3" "${FAKE_APPLIED:-true}" ;;
esac
"""


class RunStepsTest(unittest.TestCase):
    """Executes the steps workflow_steps extracts, each as a runner would: its script in
    `bash --noprofile --norc -eo pipefail`, in the workspace, with its env and fresh
    GITHUB_OUTPUT, GITHUB_STEP_SUMMARY and GITHUB_PATH files."""

    context = {"vars": {"DEPLOY_STATE_URL": "s3://state/trivia", "AWS_REGION": "us-east-1"}}

    def setUp(self):
        self.workspace = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.workspace)
        bin_dir = self.workspace / ".fake-bin"
        bin_dir.mkdir()
        (bin_dir / "deploy").write_text(FAKE_DEPLOY)
        # A step that would build (a cache miss) fails instead of compiling.
        (bin_dir / "cargo").write_text("#!/bin/sh\necho 'these tests never build' >&2\nexit 99\n")
        for tool in ("deploy", "cargo"):
            (bin_dir / tool).chmod(0o755)
        self.log = self.workspace / ".deploy-calls"
        self.base_env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(self.workspace),
                         "GITHUB_WORKSPACE": str(self.workspace), "FAKE_DEPLOY_LOG": str(self.log),
                         "FAKE_URL": URL}
        self.summary = self.workspace / ".summary"

    def steps(self, name, event, context=None):
        return workflow_steps.run_steps(load(name), event, {**self.context, **(context or {})})["steps"]

    def run_step(self, step, **fake):
        self.assertEqual(step["shell"], "bash")
        script = self.workspace / ".step.sh"
        script.write_text(step["run"])
        output = self.workspace / ".output"
        output.write_text("")
        run = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.workspace / (step["working-directory"] or ""), capture_output=True, text=True,
            env={**self.base_env, **step["env"], **fake, "GITHUB_OUTPUT": str(output),
                 "GITHUB_STEP_SUMMARY": str(self.summary), "GITHUB_PATH": str(self.workspace / ".path")},
            timeout=60)
        lines = output.read_text().splitlines()
        return run.returncode, dict(line.split("=", 1) for line in lines), run.stderr

    def run_all(self, steps, **fake):
        outputs = {}
        for step in steps:
            code, out, stderr = self.run_step(step, **fake)
            self.assertEqual(code, 0, f"{step['name']}: {stderr}")
            outputs[step["name"]] = out
        return outputs

    def calls(self):
        return self.log.read_text().splitlines() if self.log.exists() else []

    def file(self, name):
        return (self.workspace / name).read_text()

    def test_an_opened_pull_request(self):
        outputs = self.run_all(self.steps("preview.yml", pull_request_event("opened", number=42)))
        self.assertEqual(self.calls(), [
            "env create pr-42 --if-missing --ttl 72h",
            "validate -e pr-42 --format github",
            "plan -e pr-42 --format markdown --out plan.json",
            "apply -e pr-42 --plan plan.json --yes",
            "smoke -e pr-42 --format markdown",
            "output -e pr-42 api.rest_api.invoke_url",
        ])
        self.assertEqual(self.file("plan.md"),
                         "<!-- deploy:plan pr-42 -->\n**Plan:** 3 to add, 0 to change, 0 to destroy.\n")
        self.assertEqual(self.file("preview.md"), textwrap.dedent(f"""\
            <!-- deploy:preview pr-42 -->
            ### Preview `pr-42`

            {URL}

            Commit {HEAD_SHA}. Destroyed when this pull request closes, or by `deploy gc` 72h after the last push.

            | check | result |
            |---|---|
            | health | ok |
            """))
        self.assertEqual(outputs["Smoke-check and write the preview comment"], {"url": URL})
        self.assertIn("<!-- deploy:plan pr-42 -->", self.file(".summary"))

    def by_name(self, steps, name):
        return next(s for s in steps if s["name"] == name)

    def test_failing_checks_still_write_the_comment_and_fail_the_step(self):
        steps = self.steps("preview.yml", pull_request_event("synchronize"))
        code, _, _ = self.run_step(self.by_name(steps, "Smoke-check and write the preview comment"),
                                   FAKE_SMOKE_EXIT="1", FAKE_SMOKE_RESULT="failed: 503")
        self.assertEqual(code, 1)
        self.assertIn("| health | failed: 503 |", self.file("preview.md"))

    def test_a_failed_plan_still_writes_its_body_and_fails_the_step(self):
        steps = self.steps("preview.yml", pull_request_event("synchronize"))
        code, _, _ = self.run_step(self.by_name(steps, "Plan"), FAKE_PLAN_EXIT="1")
        self.assertEqual(code, 1)
        self.assertTrue(self.file("plan.md").startswith("<!-- deploy:plan pr-7 -->"))

    def test_a_closed_pull_request_with_state_is_destroyed_from_it(self):
        self.run_all(self.steps("preview.yml", pull_request_event("closed")), FAKE_APPLIED="true")
        self.assertEqual(self.calls(), ["env create pr-7 --if-missing", "status -e pr-7 --json",
                                        "destroy -e pr-7 --yes"])
        self.assertEqual(self.file("preview.md"), textwrap.dedent("""\
            <!-- deploy:preview pr-7 -->
            ### Preview `pr-7`: destroyed

            The pull request was closed and everything its state recorded was deleted.
            """))

    def test_a_closed_pull_request_without_state_is_swept(self):
        self.run_all(self.steps("preview.yml", pull_request_event("closed")), FAKE_APPLIED="false")
        self.assertEqual(self.calls()[-1], "destroy -e pr-7 --yes --sweep")
        self.assertIn("it had no state; everything tagged `deploy:environment=pr-7` was deleted",
                      self.file("preview.md"))

    def test_production_plan_says_whether_there_is_anything_to_apply(self):
        plan = self.by_name(self.steps("production.yml", push_event()), "Plan")
        for exit_code, expected in (("0", (0, {"changes": "false"})), ("2", (0, {"changes": "true"})),
                                    ("1", (1, {}))):
            code, outputs, _ = self.run_step(plan, FAKE_PLAN_EXIT=exit_code)
            self.assertEqual((code, outputs), expected, exit_code)
        self.assertEqual(self.calls()[0],
                         "plan -e prod --format markdown --out prod-plan.json --detailed-exitcode")

    def test_production_apply_applies_the_saved_plan(self):
        changes = {"needs": {"plan": {"outputs": {"changes": "true"}}}}
        steps = self.steps("production.yml", push_event(), changes)
        outputs = self.run_all([s for s in steps if s["job"] == "apply"])
        self.assertEqual(self.calls(), ["apply -e prod --plan prod-plan.json --yes",
                                        "output -e prod api.rest_api.invoke_url"])
        self.assertEqual(outputs["URL"], {"url": URL})

    def test_gc(self):
        self.run_all(self.steps("gc.yml", schedule_event()))
        self.run_all(self.steps("gc.yml", dispatch_event(**{"dry-run": True})))
        self.assertEqual(self.calls(), ["gc", "gc --dry-run"])


if __name__ == "__main__":
    unittest.main()
