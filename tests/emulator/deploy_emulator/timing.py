"""How long things take in the emulator. Profiles:
- fast (default): just enough for waits to be exercised;
- hostile: long enough that pollers must really wait;
- realistic: real AWS durations multiplied by DEPLOY_EMULATOR_SCALE (e.g. 0.01)."""

import os

# Real AWS durations in seconds (typical, from experience and the AWS docs' ranges).
REAL = {
    "call": 0.08,            # one control-plane API call
    "cache_create": 240.0,   # ElastiCache Serverless create
    "cache_modify": 30.0,
    "cache_delete": 120.0,
    "nat_pending": 90.0,     # NAT gateway pending -> available
    "nat_delete": 60.0,
    "lambda_pending": 2.0,   # function Pending -> Active (non-VPC)
    "lambda_vpc_pending": 30.0,
    "eni_linger": 600.0,     # Hyperplane ENIs after a VPC function's delete
    "iam_propagation": 8.0,  # a new role cannot yet be assumed by Lambda
    "consistency": 2.0,      # not-found right after create
}

FAST = {k: 0.0 for k in REAL} | {"cache_create": 0.3, "cache_modify": 0.2, "cache_delete": 0.2, "nat_pending": 0.2, "nat_delete": 0.1}

HOSTILE = {
    "call": 0.01,
    "cache_create": 3.0,
    "cache_modify": 1.0,
    "cache_delete": 1.5,
    "nat_pending": 2.0,
    "nat_delete": 1.0,
    "lambda_pending": 0.5,
    "lambda_vpc_pending": 1.0,
    "eni_linger": 4.0,
    "iam_propagation": 2.0,
    "consistency": 1.0,
}


def profile():
    return os.environ.get("DEPLOY_EMULATOR_PROFILE", "fast")


def seconds(name):
    p = profile()
    if p == "realistic":
        return REAL[name] * float(os.environ.get("DEPLOY_EMULATOR_SCALE", "0.01"))
    if p == "hostile":
        return HOSTILE[name]
    return FAST[name]
