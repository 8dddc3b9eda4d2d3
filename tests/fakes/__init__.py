"""Protocol-faithful peers for tests: they speak the real wire protocols over real sockets and refuse what the real
services would refuse."""
