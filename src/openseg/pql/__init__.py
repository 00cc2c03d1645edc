"""openseg.pql."""
