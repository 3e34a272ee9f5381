"""Tests on the session's hub stacks (the ``hub`` fixture of :mod:`tests.hub.conftest`).

One pytest worker runs this whole folder (``pytest_xdist_make_scheduler`` in
:mod:`tests.conftest`), so each JupyterHub major's stack starts once per run instead of once on
every worker that draws one of these files. Their tests leave the stack as they found it (each
user fixture stops its server), which any test sharing the stack may rely on.
"""
