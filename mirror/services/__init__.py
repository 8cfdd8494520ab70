"""What the verbs share: orchestration over config, model, host, engine and net.

Bringing the mirrors up (install) and down (remove), the keeper, the refresh
lock and run, the cache's lifecycle, gathering status and metrics (status,
observe*), archives, clients, rewriting references, scanning, the Kubernetes
manifests. A service may import another service; none imports mirror.cli,
and the verbs (mirror.cli.*) never import each other.
"""
