"""The API's routes, one module per concept; each only parses, authorises and delegates.

Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, so the blocking
ledger transactions never stall the event loop that checks tokens. They return plain dicts
built by the ledger's ``describe_*`` helpers and declare ``response_model=None``: a
``dict[str, Any]`` model would only re-validate them, in a second thread-pool hop.
"""
