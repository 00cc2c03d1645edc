"""openseg.engines."""
