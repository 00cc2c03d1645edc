"""openseg.xdm."""
