"""The web server: ASGI app, run manager, run history, security. Imports nothing heavy at package level."""
