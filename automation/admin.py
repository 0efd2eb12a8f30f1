"""Staff console screens of the automation app."""
