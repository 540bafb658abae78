"""Provisioners: the `Provisioner` interface and its implementations."""
