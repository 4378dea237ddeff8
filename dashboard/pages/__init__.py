"""Dashboard pages; each module has `add_pages(app)`."""
