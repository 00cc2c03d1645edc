"""openseg.api."""
