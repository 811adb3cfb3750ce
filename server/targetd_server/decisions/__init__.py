"""How a call is decided: on-device (``local``) over the applied artifact snapshot, or server-side by the
Delivery API (``targetd_server.delivery``). ``targetd_server.target_client`` routes between them."""
