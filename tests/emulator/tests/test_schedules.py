"""EventBridge schedules in the emulator: the cron/rate grammar and timetable, and
scheduled rules that invoke real functions (through the Lambda runtime) with AWS's
Scheduled Event, only when the function's resource policy allows the rule."""

import json
import re
import tempfile
import time
import unittest
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

from botocore.exceptions import ClientError

from deploy_emulator import schedules
from deploy_emulator.schedules import Cron, Timetable, parse_schedule

from .support import ACCOUNT, REGION, Emulator

SCALE = 0.02  # rate(1 minute) fires every 1.2 s; rate(1 day) not within a test
MINUTE = 60 * SCALE

# Appends {"request_id", "event"} per invocation to the file named by $RECORD.
RECORDER = """#!/usr/bin/python3
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    with open(os.environ["RECORD"], "a") as f:
        f.write(json.dumps({"request_id": request_id, "event": event}) + "\\n")
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=b"{}", method="POST")).read()
"""


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def upcoming(expression, start, n=3):
    cron, found, t = Cron(expression), [], start
    for _ in range(n):
        t = cron.next_time(t)
        found.append(t)
    return found


class CronTest(unittest.TestCase):
    START = utc(2026, 11, 22, 20, 42, 10)  # a Sunday

    def test_daily_at_noon(self):
        self.assertEqual(upcoming("0 12 * * ? *", self.START),
                         [utc(2026, 11, 23, 12), utc(2026, 11, 24, 12), utc(2026, 11, 25, 12)])

    def test_every_quarter_hour_on_weekdays(self):
        self.assertEqual(upcoming("0/15 * ? * MON-FRI *", self.START, 5),
                         [utc(2026, 11, 23, 0, 0), utc(2026, 11, 23, 0, 15), utc(2026, 11, 23, 0, 30),
                          utc(2026, 11, 23, 0, 45), utc(2026, 11, 23, 1, 0)])
        friday_night = Cron("0/15 * ? * MON-FRI *").next_time(utc(2026, 11, 27, 23, 45))
        self.assertEqual(friday_night, utc(2026, 11, 30, 0, 0))  # Saturday and Sunday skipped

    def test_last_friday_of_each_month_in_a_year(self):
        self.assertEqual(upcoming("0 10 ? * 6L 2030", self.START),
                         [utc(2030, 1, 25, 10), utc(2030, 2, 22, 10), utc(2030, 3, 29, 10)])
        self.assertIsNone(Cron("0 10 ? * 6L 2030").next_time(utc(2030, 12, 27, 10)))

    def test_day_of_week_numbers_start_on_sunday(self):
        self.assertEqual(upcoming("0 0 ? * 1 *", self.START, 1), [utc(2026, 11, 29)])
        self.assertEqual(upcoming("0 0 ? * SAT *", self.START, 1), [utc(2026, 11, 28)])
        self.assertEqual(upcoming("30 2 ? * L *", self.START, 1), [utc(2026, 11, 28, 2, 30)])  # L: Saturday

    def test_nth_weekday(self):
        self.assertEqual(upcoming("0 8 ? * 3#2 *", self.START, 2), [utc(2026, 12, 8, 8), utc(2027, 1, 12, 8)])
        # No fifth Monday in February 2027: March has one on the 29th.
        self.assertEqual(Cron("0 8 ? * MON#5 *").next_time(utc(2027, 2, 1)), utc(2027, 3, 29, 8))

    def test_last_day_and_nearest_weekday_of_month(self):
        self.assertEqual(upcoming("0 0 L * ? *", self.START, 4),
                         [utc(2026, 11, 30), utc(2026, 12, 31), utc(2027, 1, 31), utc(2027, 2, 28)])
        # 2026-02-01 is a Sunday (→ Monday 2nd), 2026-08-01 a Saturday (→ Monday 3rd, not July),
        # 2026-05-31 a Sunday (→ Friday 29th, not June).
        self.assertEqual(Cron("0 9 1W * ? *").next_time(utc(2026, 1, 31)), utc(2026, 2, 2, 9))
        self.assertEqual(Cron("0 9 1W * ? *").next_time(utc(2026, 7, 31)), utc(2026, 8, 3, 9))
        self.assertEqual(Cron("0 9 31W * ? *").next_time(utc(2026, 5, 1)), utc(2026, 5, 29, 9))
        self.assertEqual(Cron("0 9 15W * ? *").next_time(utc(2026, 11, 1)), utc(2026, 11, 16, 9))  # Sunday 15th

    def test_lists_ranges_steps_and_names(self):
        self.assertEqual(upcoming("5,35 8-9 ? JAN,JUL MON *", self.START, 5),
                         [utc(2027, 1, 4, 8, 5), utc(2027, 1, 4, 8, 35), utc(2027, 1, 4, 9, 5),
                          utc(2027, 1, 4, 9, 35), utc(2027, 1, 11, 8, 5)])
        self.assertEqual(upcoming("0 0 1/10 * ? *", self.START, 3), [utc(2026, 12, 1), utc(2026, 12, 11), utc(2026, 12, 21)])
        self.assertEqual(upcoming("0 0 31 * ? *", self.START, 2), [utc(2026, 12, 31), utc(2027, 1, 31)])

    def test_next_is_strictly_later(self):
        self.assertEqual(Cron("0 12 * * ? *").next_time(utc(2026, 11, 23, 12)), utc(2026, 11, 24, 12))

    def test_rates(self):
        self.assertEqual(parse_schedule("rate(1 minute)").period, 60)
        self.assertEqual(parse_schedule("rate(6 hours)").period, 6 * 3600)
        self.assertEqual(parse_schedule("rate(2 days)").period, 2 * 86400)

    def test_what_aws_refuses(self):
        for bad in ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "rate(5 seconds)", "rate(1.5 hours)",
                    "cron(0 12 * * *)", "cron(0 12 * * * *)", "cron(0 12 ? * ? *)", "cron(60 * * * ? *)",
                    "cron(0 24 * * ? *)", "cron(0 0 ? * 8 *)", "cron(0 0 ? * 3#6 *)", "cron(0 0 32 * ? *)",
                    "cron(0 0 ? FOO * *)", "cron(0 0 * * ? 1969)", "cron(*/0 * * * ? *)", "every hour"]:
            with self.assertRaises(ValueError, msg=bad):
                parse_schedule(bad)

    def test_scaled_timetables(self):
        anchor = utc(2026, 11, 22, 11, 0).timestamp()
        with mock.patch.object(schedules, "_scale", 0.001):
            rate = Timetable("rate(6 hours)", anchor)
            self.assertAlmostEqual(rate.due - anchor, 21.6, places=3)
            rate.advance(rate.due)
            self.assertAlmostEqual(rate.due - anchor, 43.2, places=3)
            rate.advance(anchor + 100)  # missed occurrences are skipped, not caught up
            self.assertAlmostEqual(rate.due - anchor, 108.0, places=3)
            noon = Timetable("cron(0 12 * * ? *)", anchor)  # one real hour away
            self.assertAlmostEqual(noon.due - anchor, 3.6, places=3)
            noon.advance(noon.due)
            self.assertAlmostEqual(noon.due - anchor, 3.6 + 86.4, places=3)
            self.assertIsNone(Timetable("cron(0 0 1 1 ? 2020)", anchor).due)


class ScheduledRulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator("--schedule-scale", str(SCALE)).start()
        cls.events = cls.emulator.client("events")
        cls.functions = cls.emulator.client("lambda")
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()
        cls.dir.cleanup()

    def recorder(self, name):
        """A function that records each event it gets; its ARN and the record file."""
        record = Path(self.dir.name) / f"{name}.jsonl"
        arn = self.emulator.create_function(name, RECORDER, {"RECORD": str(record)})["FunctionArn"]
        return arn, record

    def rule(self, name, expression, target_arn, permit=True, state="ENABLED", **target):
        arn = self.events.put_rule(Name=name, ScheduleExpression=expression, State=state)["RuleArn"]
        self.assertEqual(self.events.put_targets(Rule=name, Targets=[{"Id": "t", "Arn": target_arn, **target}])["FailedEntryCount"], 0)
        if permit:
            self.functions.add_permission(FunctionName=target_arn, StatementId=f"events-{name}", Action="lambda:InvokeFunction",
                                          Principal="events.amazonaws.com", SourceArn=arn)
        return arn

    def fired(self, rule):
        return self.emulator.control("GET", f"/_deploy/events/fired?rule={rule}")[1]["fired"]

    def fire(self, rule):
        return self.emulator.control("POST", f"/_deploy/events/rules/{rule}/fire")

    def records(self, path, at_least=1, within=20.0):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            text = path.read_text() if path.exists() else ""
            lines = text[: text.rfind("\n") + 1].splitlines()  # whole lines only
            if len(lines) >= at_least:
                return [json.loads(line) for line in lines]
            time.sleep(0.1)
        self.fail(f"{path.name}: fewer than {at_least} events within {within} s; emulator log:\n{self.emulator.log()[-3000:]}")

    def test_rate_rule_fires_scheduled_events_until_disabled(self):
        function, record = self.recorder("every-minute")
        rule_arn = self.rule("every-minute", "rate(1 minute)", function, state="DISABLED")
        self.events.enable_rule(Name="every-minute")
        enabled = time.monotonic()
        time.sleep(MINUTE / 2)
        self.assertEqual(self.fired("every-minute"), [], "a rate fires one period after the rule is enabled, not at once")
        got = self.records(record, at_least=2)
        self.assertGreaterEqual(time.monotonic() - enabled, 2 * MINUTE)
        for r in got:
            e = r["event"]
            self.assertEqual(set(e), {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"})
            self.assertEqual((e["version"], e["detail-type"], e["source"], e["detail"]), ("0", "Scheduled Event", "aws.events", {}))
            self.assertEqual((e["account"], e["region"], e["resources"]), (ACCOUNT, REGION, [rule_arn]))
            self.assertRegex(e["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertNotEqual(got[0]["event"]["id"], got[1]["event"]["id"])
        fired_ids = {f["request_id"] for f in self.fired("every-minute") if f["ok"]}
        self.assertTrue({r["request_id"] for r in got} <= fired_ids)

        self.events.disable_rule(Name="every-minute")
        time.sleep(0.5)  # a firing already under way may finish
        count = len(self.fired("every-minute"))
        time.sleep(3 * MINUTE)
        self.assertEqual(len(self.fired("every-minute")), count, "a disabled rule does not fire")
        status, body = self.fire("every-minute")
        self.assertEqual(status, 409, body)

        self.events.enable_rule(Name="every-minute")
        self.assertTrue(any(f["ok"] for f in self.wait_fired("every-minute", count + 1)))

    def wait_fired(self, rule, at_least):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            fired = self.fired(rule)
            if len(fired) >= at_least:
                return fired
            time.sleep(0.1)
        self.fail(f"rule {rule} fired fewer than {at_least} times; emulator log:\n{self.emulator.log()[-3000:]}")

    def test_cron_rule_fires_on_its_scaled_timetable(self):
        function, record = self.recorder("cron-minutely")
        rule_arn = self.rule("cron-minutely", "cron(* * * * ? *)", function)
        got = self.records(record, at_least=2)
        self.assertEqual(got[0]["event"]["resources"], [rule_arn])

    def test_target_change_is_picked_up(self):
        first, first_record = self.recorder("target-first")
        second, second_record = self.recorder("target-second")
        self.rule("target-change", "rate(1 minute)", first)
        self.records(first_record)
        self.rule("target-change", "rate(1 minute)", second)  # same target Id, new function
        self.records(second_record)
        self.events.remove_targets(Rule="target-change", Ids=["t"])
        self.events.delete_rule(Name="target-change")
        time.sleep(0.5)
        count = len(self.fired("target-change"))
        time.sleep(2 * MINUTE)
        self.assertEqual(len(self.fired("target-change")), count, "a deleted rule does not fire")

    def test_fire_now(self):
        function, record = self.recorder("fire-now")
        rule_arn = self.rule("daily", "rate(1 day)", function)
        status, body = self.fire("daily")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["rule_arn"], rule_arn)
        [invocation] = body["invocations"]
        self.assertTrue(invocation["ok"], invocation)
        [got] = self.records(record)
        self.assertEqual(got["request_id"], invocation["request_id"])
        self.assertEqual(got["event"]["detail-type"], "Scheduled Event")
        self.assertEqual(got["event"]["resources"], [rule_arn])
        self.assertEqual(self.fire("no-such-rule")[0], 404)

    def test_input_replaces_and_input_path_selects(self):
        function, record = self.recorder("with-input")
        self.rule("with-input", "rate(1 day)", function, Input='{"job": "cleanup", "n": 3}')
        self.assertTrue(self.fire("with-input")[1]["invocations"][0]["ok"])
        self.assertEqual(self.records(record)[0]["event"], {"job": "cleanup", "n": 3})

        function, record = self.recorder("with-input-path")
        rule_arn = self.rule("with-input-path", "rate(1 day)", function, InputPath="$.resources")
        self.assertTrue(self.fire("with-input-path")[1]["invocations"][0]["ok"])
        self.assertEqual(self.records(record)[0]["event"], [rule_arn])

    def test_no_invoke_without_the_rules_permission(self):
        function, record = self.recorder("unpermitted")
        self.rule("unpermitted", "rate(1 day)", function, permit=False)
        # A permission for another rule does not do.
        self.functions.add_permission(FunctionName=function, StatementId="other-rule", Action="lambda:InvokeFunction",
                                      Principal="events.amazonaws.com",
                                      SourceArn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/some-other-rule")
        status, body = self.fire("unpermitted")
        self.assertEqual(status, 200, body)
        [invocation] = body["invocations"]
        self.assertFalse(invocation["ok"])
        self.assertIsNone(invocation["request_id"])
        self.assertIn("does not allow events.amazonaws.com", invocation["why"])
        self.assertIn("does not allow events.amazonaws.com", self.emulator.log())
        time.sleep(1.0)
        self.assertFalse(record.exists(), "the function was invoked without permission")

    def test_alias_target_needs_the_alias_permission(self):
        function, record = self.recorder("aliased")
        version = self.functions.publish_version(FunctionName="aliased")["Version"]
        alias = self.functions.create_alias(FunctionName="aliased", Name="live", FunctionVersion=version)["AliasArn"]
        rule_arn = self.rule("aliased", "rate(1 day)", alias, permit=False)
        # The unqualified function's permission does not cover the alias.
        self.functions.add_permission(FunctionName="aliased", StatementId="unqualified", Action="lambda:InvokeFunction",
                                      Principal="events.amazonaws.com", SourceArn=rule_arn)
        self.assertFalse(self.fire("aliased")[1]["invocations"][0]["ok"])
        self.functions.add_permission(FunctionName="aliased", Qualifier="live", StatementId="alias", Action="lambda:InvokeFunction",
                                      Principal="events.amazonaws.com", SourceArn=rule_arn)
        self.assertTrue(self.fire("aliased")[1]["invocations"][0]["ok"])
        self.assertEqual(self.records(record)[0]["event"]["resources"], [rule_arn])

    def test_other_targets_are_reported_not_fatal(self):
        queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:some-queue"
        self.rule("to-queue", "rate(1 day)", queue, permit=False)
        status, body = self.fire("to-queue")
        self.assertEqual(status, 200, body)
        self.assertIn("not a Lambda function", body["invocations"][0]["why"])
        self.assertEqual(self.emulator.control("GET", "/_deploy/health")[0], 200)

    def test_put_rule_refuses_what_aws_refuses(self):
        for bad in ["rate(1 minutes)", "cron(0 12 * * * *)"]:
            with self.assertRaises(ClientError) as caught:
                self.events.put_rule(Name="bad", ScheduleExpression=bad)
            self.assertEqual(caught.exception.response["Error"]["Code"], "ValidationException")
        self.assertRegex(self.events.put_rule(Name="good", ScheduleExpression="cron(0 10 ? * 6L 2030)")["RuleArn"], re.escape(":rule/good") + "$")


if __name__ == "__main__":
    unittest.main()
