"""batuta's transfer engine: the public API."""
