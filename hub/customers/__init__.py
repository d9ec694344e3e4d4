"""Customers, loyalty and the CRM bridge (issue 16): records, the service, REST routes; feature.py wires it into the hub."""
