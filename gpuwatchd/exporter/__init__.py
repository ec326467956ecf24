"""The Prometheus endpoint: ``render`` turns Snapshots into the exposition, ``http`` serves it,
``webconfig`` reads the exporter-toolkit web config (TLS, basic auth, headers)."""
