"""Runs inside JupyterHub: spawn form, admission hooks, spawners, roles and the service."""
