"""Registry HTTP: the API client (mirrors and upstreams) and the probes of who answers.

Importing this package must stay cheap: Kconfig imports net.probes while parsing."""
