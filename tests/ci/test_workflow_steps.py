"""tests/tools/workflow_steps.py: expressions as GitHub evaluates them, `on:` filters,
job and step conditions, env merging and substitution, and what it extracts from the
templates for each event the team's workflows answer."""

import json
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import yaml

from support import (HEAD_SHA, WORKFLOW_STEPS, dispatch_event, load, pull_request_event,
                     push_event, schedule_event, workflow_steps as ws)


def steps_of(workflow_text, event, context=None):
    return ws.run_steps(yaml.safe_load(textwrap.dedent(workflow_text)), event, context)


class ExpressionTest(unittest.TestCase):
    contexts = {
        "github": {"event": {"action": "closed", "number": 7}, "sha": "abc"},
        "steps": {"cache": {"outputs": {"cache-hit": "true"}, "outcome": "success"}},
        "vars": {"REGION": "eu-west-1"},
        "env": {},
    }

    def value(self, source):
        return ws.evaluate(source, self.contexts)

    def test_comparisons_of_strings_ignore_case(self):
        self.assertIs(self.value("github.event.action == 'CLOSED'"), True)
        self.assertIs(self.value("github.event.action != 'closed'"), False)

    def test_logical_operators_return_an_operand(self):
        self.assertEqual(self.value("vars.MISSING || 'default'"), "default")
        self.assertEqual(self.value("vars.REGION && 'set'"), "set")
        self.assertEqual(self.value("vars.MISSING && 'set'"), None)
        self.assertIs(self.value("!(github.event.action == 'closed' || false)"), False)

    def test_properties_by_name_with_dashes_or_index(self):
        self.assertEqual(self.value("steps.cache.outputs.cache-hit"), "true")
        self.assertEqual(self.value("steps['cache'].outputs['cache-hit']"), "true")
        self.assertIsNone(self.value("steps.other.outputs.cache-hit"))

    def test_missing_values_equal_the_empty_string_and_numbers_coerce(self):
        self.assertIs(self.value("steps.other.outputs.x == ''"), True)
        self.assertIs(self.value("github.event.number == '7'"), True)
        self.assertIs(self.value("github.event.number == 7"), True)

    def test_functions(self):
        self.assertIs(self.value("contains('pr-7', 'PR')"), True)
        self.assertIs(self.value("startsWith(github.event.action, 'clo')"), True)
        with self.assertRaises(ws.ExpressionError):
            self.value("hashFiles('Cargo.lock')")

    def test_unknown_contexts_and_bad_syntax_are_errors(self):
        with self.assertRaises(ws.ExpressionError):
            self.value("matrix.os == 'linux'")
        with self.assertRaises(ws.ExpressionError):
            self.value("github.event.action ==")

    def test_conditions_imply_success_unless_they_name_a_status(self):
        self.assertFalse(ws.condition("true", self.contexts, succeeded=False))
        self.assertTrue(ws.condition("${{ always() }}", self.contexts, succeeded=False))
        self.assertTrue(ws.condition("${{ !cancelled() && true }}", self.contexts, succeeded=False))

    def test_substitution_renders_values_as_text(self):
        self.assertEqual(ws.substitute("pr-${{ github.event.number }}", self.contexts), "pr-7")
        self.assertEqual(ws.substitute("${{ vars.NOPE }}|${{ true }}", self.contexts), "|true")


class WorkflowTest(unittest.TestCase):
    WORKFLOW = """
        on:
          pull_request:
            types: [opened, closed]
        env:
          ENVIRONMENT: pr-${{ github.event.number }}
          LEVEL: workflow
        defaults:
          run:
            shell: bash
        jobs:
          last:
            needs: [first]
            runs-on: ubuntu-22.04
            steps:
              - run: echo last
          first:
            if: github.event.action != 'closed'
            runs-on: ubuntu-22.04
            env:
              LEVEL: job
              REGION: ${{ vars.REGION }}
            steps:
              - id: cache
                uses: actions/cache@v4
              - name: Build
                if: steps.cache.outputs.cache-hit != 'true'
                run: cargo build
              - name: Report
                working-directory: app
                env:
                  LEVEL: step
                  WHERE: ${{ env.ENVIRONMENT }} in ${{ env.REGION }}
                run: echo "$WHERE"
          cleanup:
            if: always() && github.event.action == 'closed'
            needs: first
            runs-on: ubuntu-22.04
            steps:
              - run: echo cleanup
    """

    def test_jobs_come_in_needs_order_and_steps_carry_merged_env(self):
        out = steps_of(self.WORKFLOW, pull_request_event("opened"), {"vars": {"REGION": "eu-west-1"}})
        self.assertEqual(out["event"], "pull_request")
        self.assertEqual([(s["job"], s["name"]) for s in out["steps"]],
                         [("first", "Report"), ("last", "Run echo last")])
        report = out["steps"][0]
        self.assertEqual(report["env"], {"ENVIRONMENT": "pr-7", "LEVEL": "step",
                                         "REGION": "eu-west-1", "WHERE": "pr-7 in eu-west-1"})
        self.assertEqual((report["working-directory"], report["shell"]), ("app", "bash"))
        self.assertEqual(out["skipped"], [{"job": "first", "name": "actions/cache@v4",
                                           "uses": "actions/cache@v4"}])

    def test_given_step_outputs_replace_the_assumed_cache_hit(self):
        out = steps_of(self.WORKFLOW, pull_request_event("opened"),
                       {"steps": {"cache": {"outputs": {"cache-hit": "false"}}}})
        self.assertEqual([s["name"] for s in out["steps"]][:2], ["Build", "Report"])

    def test_a_job_after_a_skipped_job_is_skipped_unless_it_runs_always(self):
        out = steps_of(self.WORKFLOW, pull_request_event("closed"))
        self.assertEqual([s["job"] for s in out["steps"]], ["cleanup"])

    def test_event_types_outside_on_run_nothing(self):
        out = steps_of(self.WORKFLOW, pull_request_event("labeled"))
        self.assertEqual(out, {"event": "pull_request", "steps": [], "skipped": []})

    def test_pull_requests_default_to_opened_synchronize_reopened(self):
        workflow = "on: pull_request\njobs:\n  a:\n    steps:\n      - run: x\n"
        self.assertEqual(len(steps_of(workflow, pull_request_event("synchronize"))["steps"]), 1)
        workflow = "on:\n  pull_request:\njobs:\n  a:\n    steps:\n      - run: x\n"
        self.assertEqual(len(steps_of(workflow, pull_request_event("closed"))["steps"]), 0)

    def test_branch_filters_and_unsupported_filters(self):
        workflow = "on:\n  push:\n    branches: [main]\njobs:\n  a:\n    steps:\n      - run: x\n"
        self.assertEqual(len(steps_of(workflow, push_event("main"))["steps"]), 1)
        self.assertEqual(len(steps_of(workflow, push_event("topic"))["steps"]), 0)
        with self.assertRaises(SystemExit):
            steps_of("on:\n  push:\n    paths: [src]\njobs: {}\n", push_event())

    def test_the_command_line_prints_json(self):
        with tempfile.TemporaryDirectory() as tmp:
            workflow, event = Path(tmp, "w.yml"), Path(tmp, "e.json")
            workflow.write_text(textwrap.dedent(self.WORKFLOW))
            event.write_text(json.dumps(pull_request_event("opened")))
            run = subprocess.run([sys.executable, str(WORKFLOW_STEPS), str(workflow), str(event),
                                  '{"vars": {"REGION": "us-east-1"}}'],
                                 capture_output=True, text=True, check=True)
        out = json.loads(run.stdout)
        self.assertEqual(out["steps"][0]["env"]["WHERE"], "pr-7 in us-east-1")


class TemplatesTest(unittest.TestCase):
    """What each template runs, per event: the commands a user relies on, in order."""

    context = {"vars": {"DEPLOY_STATE_URL": "s3://state/trivia", "AWS_REGION": "us-east-1"}}

    def commands(self, name, event, context=None):
        out = ws.run_steps(load(name), event, {**self.context, **(context or {})})
        return [(s["job"], s["name"]) for s in out["steps"]], out

    def test_an_opened_pull_request_is_planned_applied_and_checked(self):
        for action in ("opened", "synchronize", "reopened"):
            steps, out = self.commands("preview.yml", pull_request_event(action, number=42))
            self.assertEqual(steps, [
                ("preview", "Put deploy on PATH"),
                ("preview", "Create or extend the environment"),
                ("preview", "Validate"),
                ("preview", "Plan"),
                ("preview", "Apply"),
                ("preview", "Smoke-check and write the preview comment"),
            ], action)
            env = out["steps"][-1]["env"]
            self.assertEqual((env["ENVIRONMENT"], env["COMMIT"], env["DEPLOY_STATE_URL"]),
                             ("pr-42", HEAD_SHA, "s3://state/trivia"))
            self.assertEqual([s["name"] for s in out["skipped"]][-2:],
                             ["Comment the plan", "Comment the preview"])

    def test_a_cache_miss_builds_the_binary(self):
        steps, _ = self.commands("preview.yml", pull_request_event("opened"),
                                 {"steps": {"deploy-bin": {"outputs": {"cache-hit": "false"}}}})
        self.assertEqual(steps[0], ("preview", "Build the deploy binary"))

    def test_a_closed_pull_request_is_destroyed(self):
        steps, _ = self.commands("preview.yml", pull_request_event("closed"))
        self.assertEqual(steps, [("destroy", "Put deploy on PATH"),
                                 ("destroy", "Destroy the environment")])

    def test_pull_requests_from_forks_get_no_preview(self):
        for action in ("opened", "closed"):
            steps, _ = self.commands("preview.yml", pull_request_event(action, fork=True))
            self.assertEqual(steps, [])

    def test_a_push_to_main_is_applied_only_when_the_plan_has_changes(self):
        changes = {"needs": {"plan": {"outputs": {"changes": "true"}}}}
        steps, _ = self.commands("production.yml", push_event("main"), changes)
        self.assertEqual([n for j, n in steps if n != "Put deploy on PATH"],
                         ["Validate", "Plan", "Apply", "URL"])
        self.assertEqual([j for j, n in steps if n == "Apply"], ["apply"])
        steps, _ = self.commands("production.yml", push_event("main"))
        self.assertEqual([j for j, _ in steps], ["plan"] * 3)
        self.assertEqual(self.commands("production.yml", push_event("topic"))[0], [])

    def test_gc_runs_nightly_and_by_hand(self):
        for event in (schedule_event(), dispatch_event(**{"dry-run": "true"})):
            steps, out = self.commands("gc.yml", event)
            self.assertEqual(steps[-1], ("gc", "Collect expired environments"))
        self.assertEqual(out["steps"][-1]["env"]["DRY_RUN"], "true")


if __name__ == "__main__":
    unittest.main()
