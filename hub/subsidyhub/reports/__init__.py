"""Documents made from ledger figures for people outside the system (the funder, auditors)."""
