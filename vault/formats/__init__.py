"""Smart Patient Record Format definitions shipped with SERUMS (YAML, loaded by name)."""
