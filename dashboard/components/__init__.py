"""Pieces shared by the pages: the page shell with its navigation, and form parts."""
