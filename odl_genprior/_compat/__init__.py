"""Version-guarded fixes for ODL 1.0 (`odl_fixes`)."""
