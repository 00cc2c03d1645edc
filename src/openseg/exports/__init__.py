"""openseg.exports."""
