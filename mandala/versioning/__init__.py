"""Code versioning (dependency tracking); see tracking.py for what is available now."""
