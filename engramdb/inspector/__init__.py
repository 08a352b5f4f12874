"""The web inspector's page (static/: HTML, CSS and JavaScript, no build step, no CDN),
served at /ui by `engram serve` and `engram ui` (engramdb/server/inspector.py)."""
