"""Hostile mode's lost responses (the call takes effect, the answer is a 500) and
CreateNatGateway's ClientToken idempotency, which a retry after a lost answer relies on."""

import os
import unittest
from unittest import mock

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .support import REGION, Emulator

# One attempt per call: the test sees each answer the emulator gives.
ONCE = Config(retries={"total_max_attempts": 1})
TAGGED = {"ResourceType": "vpc", "Tags": [{"Key": "deploy:address", "Value": "network.vpc"}]}


def ec2_of(em):
    return boto3.client("ec2", endpoint_url=em.url, region_name=REGION, config=ONCE,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


class LostResponses(unittest.TestCase):
    def test_a_create_whose_answer_is_lost_took_effect(self):
        # No throttling or 5xx before the work: only lost answers.
        quiet = {"DEPLOY_EMULATOR_THROTTLE": "0", "DEPLOY_EMULATOR_5XX": "0"}
        with mock.patch.dict(os.environ, quiet), Emulator("--hostile", "--lose-responses", "1.0") as em:
            ec2 = ec2_of(em)
            with self.assertRaises(ClientError) as lost:
                ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=[TAGGED])
            self.assertEqual(lost.exception.response["Error"]["Code"], "InternalError")
            self.assertEqual(lost.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
            found = ec2.describe_vpcs(Filters=[{"Name": "tag:deploy:address", "Values": ["network.vpc"]}])["Vpcs"]
            self.assertEqual(len(found), 1, "the create must have happened although its answer was lost")
            # Reads are never lost.
            self.assertEqual(len(ec2.describe_vpcs()["Vpcs"]), 2)  # with moto's default VPC
            status, calls = em.control("GET", "/_deploy/calls")
            self.assertEqual(status, 200)
            self.assertEqual(calls["lost"], {"ec2.CreateVpc": 1})

    def test_no_answer_is_lost_at_rate_zero(self):
        quiet = {"DEPLOY_EMULATOR_THROTTLE": "0", "DEPLOY_EMULATOR_5XX": "0"}
        with mock.patch.dict(os.environ, quiet), Emulator("--hostile", "--lose-responses", "0") as em:
            ec2_of(em).create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=[TAGGED])
            self.assertEqual(em.control("GET", "/_deploy/calls")[1]["lost"], {})


class NatGatewayClientToken(unittest.TestCase):
    def test_a_repeated_client_token_returns_the_first_gateway(self):
        with Emulator() as em:
            ec2 = ec2_of(em)
            vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
            eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
            first = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, ClientToken="t-1")["NatGateway"]
            again = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, ClientToken="t-1")["NatGateway"]
            self.assertEqual(first["NatGatewayId"], again["NatGatewayId"])
            live = [g for g in ec2.describe_nat_gateways()["NatGateways"] if g["State"] != "deleted"]
            self.assertEqual(len(live), 1)
            # Another token is another request: the address is taken.
            eip2 = ec2.allocate_address(Domain="vpc")["AllocationId"]
            other = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip2, ClientToken="t-2")["NatGateway"]
            self.assertNotEqual(other["NatGatewayId"], first["NatGatewayId"])


if __name__ == "__main__":
    unittest.main()


class RestApiTags(unittest.TestCase):
    def test_the_api_itself_is_tagged_and_untagged_by_arn(self):
        with Emulator() as em:
            apigw = em.client("apigateway")
            api = apigw.create_rest_api(name="tagged", tags={"a": "1", "b": "2"})["id"]
            arn = f"arn:aws:apigateway:{REGION}::/restapis/{api}"
            apigw.tag_resource(resourceArn=arn, tags={"c": "3"})
            apigw.untag_resource(resourceArn=arn, tagKeys=["a"])
            self.assertEqual(apigw.get_tags(resourceArn=arn)["tags"], {"b": "2", "c": "3"})
            self.assertEqual(apigw.get_rest_api(restApiId=api)["tags"], {"b": "2", "c": "3"})
