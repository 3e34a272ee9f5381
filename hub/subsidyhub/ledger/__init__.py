"""The accounting core: projects, allocations, prices, admissions, charges. No HTTP here."""
