"""``gpuwatchctl status``: the document the daemon serves on its unix socket, and its table.

The daemon's side: ``document`` (build the JSON document from a Snapshot) and ``server`` (the
socket server). ``gpuwatchctl``'s side: ``client`` (query) and ``table`` (the human renderer).
Shared: ``paths`` (where the socket lives), ``wire`` (the one-line protocol), ``registry`` (the
one table of sections), ``sections/`` (one module per section, with its ``build`` for the daemon
and its ``render`` for the table) and ``text`` (what the renderers draw with). Neither side
imports the other's modules.
"""
