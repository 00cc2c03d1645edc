"""openseg.segmentation."""
