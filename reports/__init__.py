"""Figures, tables and the HTML page, generated from the results store alone."""
