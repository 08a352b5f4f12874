"""Facades with other memory libraries' APIs over Engram, for code moving to it."""
