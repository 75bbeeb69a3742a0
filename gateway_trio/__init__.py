"""gateway_trio: the Trio shell around gateway_core (sockets, nurseries, signals, shutdown).

Empty for now: the always-on gateway process (``openclaw gateway run``) is built on top of
gateway_core in the gateway-shell work. Nothing here may leak protocol decisions: the shell only
executes the core's actions and routes its events.
"""
