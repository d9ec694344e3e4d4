"""The CRM bridge's storage (``outbox_store``): its durable outbox and the events it carries. The actor is
``actors/crm.py``; the wiring is in ``hub/customers``; the wire shapes are ``hub/domain/crm.py``."""
