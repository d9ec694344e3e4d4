"""Device and remote-system drivers: scales, printers, payment terminals, state systems, CRM."""
