"""Request body models: one per body of the API, after AEP's published request shapes.

Each is validated by ``api/deps.py::typed_body`` (a wrong type or size is a 400 naming the field, in AEP's
error body) and describes the body in ``/openapi.json``. They check types and sizes; what a field means
(a PQL expression that checks, a dataset that exists) stays the services' to check.
"""
