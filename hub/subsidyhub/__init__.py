"""SubsidyHub: Jupyter workspaces for subsidised GPU computing centres."""
