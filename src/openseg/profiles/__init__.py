"""openseg.profiles."""
