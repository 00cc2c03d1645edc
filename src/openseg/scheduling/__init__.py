"""openseg.scheduling."""
