"""Git hosts: the `GitHost` interface and one adapter per host."""
