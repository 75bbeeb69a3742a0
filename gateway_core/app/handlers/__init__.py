"""Method handlers, one module per family; each exports ``ROUTES`` (see ``gateway_core.app.router``)."""
