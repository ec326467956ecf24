"""Hardware health: what is wrong with the server (not with gpuwatchd), in one place.

``conditions`` judges the typed readings of a Snapshot (pure functions: PSUs, fans, BMC
sensors, redundancy groups, GPUs); the daemon publishes the result with each Snapshot
(``Snapshot.health``), the ``hardware`` status section shows it (``gpuwatchctl status`` exits 1
on any counted condition) and ``events`` turns the change between two Snapshots into journal
events (catalogued in docs/events.md), which ``hook`` may pass on to a command or a webhook.
"""
