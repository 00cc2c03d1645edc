"""openseg.catalog."""
