"""Version-guarded fixes for ODL 1.0 (`odl_fixes`) and the old module
paths of the package (`moved`)."""
