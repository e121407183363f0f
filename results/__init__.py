"""The results store: every run writes here and every report reads from here."""
