"""The API's routes, one module per concept; each only parses, authorises and delegates.

Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, so the blocking
ledger transactions never stall the event loop that checks tokens. Each declares its answer's
shape from :mod:`subsidyhub.shapes` as ``response_model`` (with ``exclude_unset``, so the
answer is exactly what the handler built, checked against the shape), which is what the
OpenAPI, the generated TypeScript types and the tests rely on. ``GET me`` returns bytes
encoded once and is documented by its shape without being re-validated.
"""
