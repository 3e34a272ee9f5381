"""The subsidy service: the ledger's HTTP API, run as the JupyterHub service named ``subsidy``.

``create_app`` (in :mod:`subsidyhub.service.app`) builds the FastAPI application;
``python -m subsidyhub.service`` runs it the way JupyterHub starts a managed service.
"""
