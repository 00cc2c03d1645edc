"""openseg.store."""
