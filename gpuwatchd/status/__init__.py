"""``gpuwatchctl status``: the document the daemon serves on its unix socket, the server, the
client and the table, with one module per section under ``sections/``."""
