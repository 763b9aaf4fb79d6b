"""Real servers on 127.0.0.1 for network tests: Debian's nginx and a scripted fault server.

Import from the submodules, e.g. ``from tests.servers.faultserver import FaultServer, Reset``.
"""
