"""The HTTP side of the server: the FastAPI app (:mod:`.app`: ``create_app``, ``serve``),
its endpoints by concern (:mod:`.routes`), request validation (:mod:`.validation`),
body and header limits (:mod:`.limits`), the connection limit (:mod:`.connections`),
``Idempotency-Key`` answers (:mod:`.idempotency`) and the OpenAPI schema and docs
(:mod:`.openapi`). Scoring itself is :mod:`mlops.serving.pipeline`."""
