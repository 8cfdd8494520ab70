"""This host: files, ports, /proc, systemd, NFS, the mirror directory and the v2 storage tree."""
