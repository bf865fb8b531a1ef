"""usable_neural: under construction."""
