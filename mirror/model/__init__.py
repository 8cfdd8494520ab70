"""Pure values: image references, endpoints, modes, manifests, archive format, client plans."""
