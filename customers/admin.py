"""Staff console screens of the customers app."""
