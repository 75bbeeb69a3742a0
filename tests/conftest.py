"""Suite-wide guard: no test may send mDNS multicast off this machine.

Gateways and CLI commands started by tests inherit ``OPENCLAW_DISABLE_BONJOUR=1`` (the published
variable), so they neither advertise nor browse. The discovery tests lift it only inside a private
network namespace that has nothing but its own loopback interface.
"""

import os

os.environ["OPENCLAW_DISABLE_BONJOUR"] = "1"
