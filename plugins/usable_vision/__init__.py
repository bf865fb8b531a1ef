"""usable_vision: under construction."""
