"""Closes two gaps in moto's OpenAPI import that real API Gateway does not have: MOCK
integrations (CORS preflights) carry no `uri` or `httpMethod`, and path items may hold
`parameters` next to their methods."""

import copy

from moto.apigateway.models import APIGatewayBackend

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "x-amazon-apigateway-any-method"}


def install():
    original_put_integration = APIGatewayBackend.put_integration
    original_put_rest_api = APIGatewayBackend.put_rest_api

    def put_integration(self, function_id, resource_id, method_type, integration_type=None, uri=None, integration_method=None, **kwargs):
        return original_put_integration(self, function_id, resource_id, method_type, integration_type, uri or "", integration_method or "POST", **kwargs)

    def put_rest_api(self, function_id, api_doc, fail_on_warnings, mode="merge"):
        doc = copy.deepcopy(api_doc)
        for path, item in (doc.get("paths") or {}).items():
            doc["paths"][path] = {k: v for k, v in item.items() if k.lower() in METHODS}
        return original_put_rest_api(self, function_id, doc, fail_on_warnings, mode)

    APIGatewayBackend.put_integration = put_integration
    APIGatewayBackend.put_rest_api = put_rest_api
