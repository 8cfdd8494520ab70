"""The Docker engine: containers (one plan -> apply path), the registry image, dockerd reload.

Every call into the docker SDK is made here, and its errors become DockerError here."""
