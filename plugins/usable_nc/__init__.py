"""usable_nc: under construction."""
