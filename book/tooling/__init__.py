"""The book's own machinery (not part of what the chapters teach)."""
