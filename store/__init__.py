"""The platform's store: tables, settings and every business rule (keys, credits, registry, logs)."""
