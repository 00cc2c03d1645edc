"""openseg.worker."""
