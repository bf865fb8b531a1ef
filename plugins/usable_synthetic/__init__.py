"""usable_synthetic: under construction."""
