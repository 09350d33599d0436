"""Closes gaps in moto's API Gateway control plane that real API Gateway does not have:
MOCK integrations (CORS preflights) carry no `uri` or `httpMethod`, and path items may
hold `parameters` next to their methods. Also keeps what the data plane (gateway.py)
serves: moto's OpenAPI import drops security schemes, the authorizer wiring, gateway
responses and most integration details, so each API's imported document is kept whole
(merged or overwritten as PutRestApi's mode says) and snapshotted at every
CreateDeployment; a stage serves the snapshot of the deployment it points to. Tags the
REST API itself (moto tags only stages)."""

import copy
import json
import re

from moto.apigateway.models import APIGatewayBackend

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}
GATEWAY_RESPONSES = "x-amazon-apigateway-gateway-responses"


class Snapshot:
    """An API's definition as of one deployment. `compiled` is the gateway's cache of
    its routing tables, filled on first use."""

    __slots__ = ("document", "resource_ids", "compiled")

    def __init__(self, document, resource_ids):
        self.document = document
        self.resource_ids = resource_ids
        self.compiled = None


class Definition:
    __slots__ = ("account", "region", "document", "deployments")

    def __init__(self, account, region, document):
        self.account = account
        self.region = region
        self.document = document
        self.deployments = {}  # deployment id -> Snapshot


DEFINITIONS = {}  # REST API id -> Definition (ids are random and unique across accounts)


def _merged(old, new):
    """PutRestApi's merge mode: the new document's methods replace the same methods of
    the old one; everything the new document does not define is kept."""
    doc = {**old, **new}
    paths = {path: dict(item) for path, item in (old.get("paths") or {}).items()}
    for path, item in (new.get("paths") or {}).items():
        paths.setdefault(path, {}).update(item)
    doc["paths"] = paths
    components = {name: dict(section) for name, section in (old.get("components") or {}).items()}
    for name, section in (new.get("components") or {}).items():
        components.setdefault(name, {}).update(section)
    doc["components"] = components
    doc[GATEWAY_RESPONSES] = {**(old.get(GATEWAY_RESPONSES) or {}), **(new.get(GATEWAY_RESPONSES) or {})}
    return doc


def install():
    original_put_integration = APIGatewayBackend.put_integration
    original_put_rest_api = APIGatewayBackend.put_rest_api
    original_create_deployment = APIGatewayBackend.create_deployment
    original_delete_deployment = APIGatewayBackend.delete_deployment
    original_delete_rest_api = APIGatewayBackend.delete_rest_api

    def put_integration(self, function_id, resource_id, method_type, integration_type=None, uri=None, integration_method=None, **kwargs):
        return original_put_integration(self, function_id, resource_id, method_type, integration_type, uri or "", integration_method or "POST", **kwargs)

    def put_rest_api(self, function_id, api_doc, fail_on_warnings, mode="merge"):
        doc = copy.deepcopy(api_doc)
        for path, item in (doc.get("paths") or {}).items():
            doc["paths"][path] = {k: v for k, v in item.items() if k.lower() in METHODS}
        api = original_put_rest_api(self, function_id, doc, fail_on_warnings, mode)
        kept = DEFINITIONS.get(function_id)
        document = copy.deepcopy(api_doc)
        if kept is None:
            DEFINITIONS[function_id] = Definition(self.account_id, self.region_name, document)
        else:
            kept.document = document if mode == "overwrite" else _merged(kept.document, document)
        return api

    def create_deployment(self, function_id, name, description="", stage_variables=None):
        deployment = original_create_deployment(self, function_id, name, description, stage_variables)
        kept = DEFINITIONS.get(function_id)
        if kept is not None:
            api = self.apis[function_id]
            ids = {resource.get_path(): resource.id for resource in api.resources.values()}
            # Documents are replaced, never changed in place, so the snapshot can share it.
            kept.deployments[deployment.id] = Snapshot(kept.document, ids)
        return deployment

    def delete_deployment(self, function_id, deployment_id):
        deployment = original_delete_deployment(self, function_id, deployment_id)
        kept = DEFINITIONS.get(function_id)
        if kept is not None:
            kept.deployments.pop(deployment_id, None)
        return deployment

    def delete_rest_api(self, function_id):
        api = original_delete_rest_api(self, function_id)
        DEFINITIONS.pop(function_id, None)
        return api

    APIGatewayBackend.put_integration = put_integration
    APIGatewayBackend.put_rest_api = put_rest_api
    APIGatewayBackend.create_deployment = create_deployment
    APIGatewayBackend.delete_deployment = delete_deployment
    APIGatewayBackend.delete_rest_api = delete_rest_api


# ---- Tags on the REST API itself ----------------------------------------------------
# moto tags only stages: TagResource, UntagResource and GetTags on
# `arn:aws:apigateway:REGION::/restapis/ID` answer 404. API Gateway tags the API.

REST_API_ARN = re.compile(r"^arn:[^:]+:apigateway:[^:]*::/restapis/([^/]+)$")


def install_rest_api_tags():
    from urllib.parse import unquote

    from moto.apigateway import urls
    from moto.apigateway.responses import APIGatewayResponse

    urls.url_paths["{0}/tags/arn:(?P<partition>[^/]+):apigateway:(?P<region_name>[^/]*)::/restapis/(?P<function_id>[^/]+)$"] = APIGatewayResponse.dispatch

    def api_of(response):
        m = REST_API_ARN.match(unquote(response.path.split("/tags/", 1)[1]))
        return response.backend.get_rest_api(m.group(1)) if m else None

    originals = {name: getattr(APIGatewayResponse, name) for name in ("get_tags", "tag_resource", "untag_resource")}

    def get_tags(self):
        api = api_of(self)
        if api is None:
            return originals["get_tags"](self)
        return json.dumps({"tags": api.tags or {}})

    def tag_resource(self):
        api = api_of(self)
        if api is None:
            return originals["tag_resource"](self)
        api.tags = {**(api.tags or {}), **(self._get_param("tags") or {})}
        return json.dumps({})

    def untag_resource(self):
        api = api_of(self)
        if api is None:
            return originals["untag_resource"](self)
        keys = self.querystring.get("tagKeys") or []
        api.tags = {k: v for k, v in (api.tags or {}).items() if k not in keys}
        return json.dumps({})

    APIGatewayResponse.get_tags = get_tags
    APIGatewayResponse.tag_resource = tag_resource
    APIGatewayResponse.untag_resource = untag_resource
