"""The HTTP endpoints, one APIRouter per concern; :func:`mlops.serving.http.app.create_app`
includes them. Endpoints find the :class:`~mlops.serving.state.ServingState` on
``request.app.state.serving`` (set by ``create_app``), so routers are plain module-level
objects, not closures.

- :mod:`.predict`: ``POST /predict`` and ``POST /invocations`` (MLflow formats);
- :mod:`.status`: ``GET /health``, ``/ready``, ``/metadata``, ``/metrics``;
- :mod:`.admin`: ``POST /admin/reload`` and ``POST /admin/breaker/reset`` (bearer token);
- ``/docs`` and ``/openapi.json`` come from :mod:`mlops.serving.http.openapi`.
"""
