"""usable_dib: under construction."""
