"""Customers at work: enrolment, changes, merging, the nightly purge, loyalty booked in the sale's
transaction, and the CRM bridge fed from the same transactions. Decisions come from the core
(``hub.domain.customers``, ``hub.domain.loyalty``, ``hub.domain.crm``); this module reads the store, calls
the core and commits through the writer, with an audit entry that names the customer only by id (the
audit log is kept forever, so it never holds a name, a phone number or an e-mail address)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import lmdb
import msgspec
import trio

from hub import audit
from hub.backoffice.readiness import Check
from hub.crm import outbox_store as crm_store
from hub.customers import records
from hub.domain import aamva, loyalty
from hub.domain import customers as core
from hub.domain.catalog import Customer, Refusal
from hub.domain.pricing import LoyaltyPolicy
from hub.domain.promotions import eligible
from hub.errors import BadRequest, Conflict, NotFound
from hub.sale import inventory as inv
from hub.sale.context import Refused, ctx_of
from hub.store.env import next_seq, tget
from hub.store.keys import text

if TYPE_CHECKING:
    from actors.crm import CrmActor
    from hub.app import Hub
    from hub.domain.cart import Cart
    from hub.domain.receipt import Receipt
    from hub.sale.context import CheckedIn, SaleContext

log = logging.getLogger("hub.customers")
PURGE_AT = time(3, 0)  # store-local: the nightly retention purge
SCANNED_FOR = 600.0  # seconds a register's last licence scan prefills an enrolment


class CustomerRefused(Conflict):
    code = "refused"


def refused(r: Refusal) -> CustomerRefused:
    return CustomerRefused(r.message, code=r.code)


class Customers:
    """Per-hub state of the customers feature."""

    def __init__(self, hub: Hub, program: loyalty.LoyaltyProgram) -> None:
        self.hub = hub
        self.program = program
        self.crm: CrmActor | None = None
        self.last_purge: dict[str, Any] | None = None
        # the last licence scanned at each register, in memory only and briefly: "Enrol" prefills from it
        self.scanned: dict[str, tuple[float, core.LicenceFacts]] = {}

    @property
    def sale(self) -> SaleContext:
        return ctx_of(self.hub.services)

    @property
    def key(self) -> bytes:
        return self.sale.id_key

    def profile_days(self) -> int:
        return self.sale.jurisdiction.check_in.retention.profile_days

    def readiness(self) -> list[Check]:
        """For the opening checklist: the CRM bridge's backlog (a warning at most: selling never waits on it)."""
        if self.hub.config.crm is None or self.crm is None:
            return []
        st = self.crm.status()
        if st["dead"]:
            return [
                Check(
                    name="CRM bridge",
                    status="warn",
                    message=f"{st['dead']} event(s) refused by the CRM: {st['last_error'] or 'see the CRM page'}",
                    action="Check the CRM's address and secret in store.toml ([crm]).",
                )
            ]
        if st["backlog"] and st["last_error"]:
            return [
                Check(
                    name="CRM bridge",
                    status="warn",
                    message=f"{st['backlog']} event(s) waiting: {st['last_error']}",
                )
            ]
        return [Check(name="CRM bridge", status="ok", message=f"{st['backlog']} event(s) waiting")]

    def wake_crm(self) -> None:
        if self.crm is not None:
            self.crm.wake()

    # ---- pricing: promotions and loyalty for this customer, now ----
    def pricing_for(
        self, cart: Cart, checked: CheckedIn | None, local_now: datetime
    ) -> tuple[Any, LoyaltyPolicy]:
        known = records.customer(self.hub.store, checked.customer_id) if checked is not None else None
        groups = loyalty.groups_of(self.program, known, checked.customer_type if checked else "")
        # the live list (hub.catalogue keeps the sale's settings up to date)
        promos = eligible(self.sale.settings.promotions, codes=cart.promo_codes, groups=groups)
        return promos, loyalty.policy_for(self.program, known, local_now.date())

    # ---- inside the sale's transaction ----
    def book_sale(
        self,
        txn: lmdb.Transaction,
        ctx: SaleContext,
        *,
        receipt: Receipt,
        customer: CheckedIn,
        priced: Any,
        staff: str,
        now: datetime,
    ) -> None:

        store = self.hub.store
        known = tget(txn, store, "customers", text(customer.customer_id), Customer)
        if known is None:
            return
        booked = loyalty.book(
            known,
            redeemed=priced.loyalty_points_redeemed,
            earned=priced.loyalty_points_earned,
            at=now,
            receipt_number=receipt.receipt_number,
            staff=staff,
        )
        if booked is None:
            raise Refused("The customer no longer has the points being redeemed.", code="not_enough_points")
        updated, entries = booked
        updated = msgspec.structs.replace(updated, last_visit_at=now)
        inv.update_customer(txn, store, updated)  # read above in this transaction: same ID hash
        for i, e in enumerate(entries):
            records.add_loyalty_entry(txn, store, e, i)
        if crm_store.shares_with_crm(updated) and self.hub.config.crm is not None:
            cfg = self.hub.config.store
            event = crm_store.sale_event(receipt, updated.id, licence=cfg.licence, store_name=cfg.name)
            crm_store.enqueue(txn, store, event, updated.id, now)

    def book_void(
        self,
        txn: lmdb.Transaction,
        ctx: SaleContext,
        *,
        receipt: Receipt,
        customer_id: str,
        staff: str,
        now: datetime,
    ) -> None:
        """A voided sale's points go back: what it earned is taken off, what it redeemed returned."""
        store = self.hub.store
        known = tget(txn, store, "customers", text(customer_id), Customer)
        if known is None or not (receipt.loyalty_points_earned or receipt.loyalty_points_redeemed):
            return
        delta = receipt.loyalty_points_redeemed - receipt.loyalty_points_earned
        # points earned by the sale may already be spent: the balance stops at zero, and the entry says so
        balance = max(0, known.loyalty_points + delta)
        updated = msgspec.structs.replace(
            known,
            loyalty_points=balance,
            lifetime_points=max(0, known.lifetime_points - receipt.loyalty_points_earned),
        )
        inv.put_customer(txn, store, updated)
        records.add_loyalty_entry(
            txn,
            store,
            loyalty.LoyaltyEntry(
                customer_id=known.id,
                at=now,
                delta=balance - known.loyalty_points,
                balance=balance,
                reason="voided",
                receipt_number=receipt.receipt_number,
                staff=staff,
                note=""
                if balance == known.loyalty_points + delta
                else "points already spent: balance kept at zero",
            ),
            15,
        )

    def after_sale(self, hub: Hub, register_id: str, receipt_number: int, settlement: Any) -> None:
        self.wake_crm()

    # ---- changes ----
    def _crm_upsert(self, txn: lmdb.Transaction, c: Customer, before: Customer | None, now: datetime) -> None:
        if self.hub.config.crm is None:
            return
        cfg = self.hub.config.store
        crm_store.enqueue_customer(
            txn, self.hub.store, c, before, licence=cfg.licence, store_name=cfg.name, now=now
        )

    def licence_seen(self, register_id: str, lic: aamva.DriverLicence) -> None:
        self.scanned[register_id] = (trio.current_time(), self._facts(lic))

    def scanned_at(self, register_id: str) -> core.LicenceFacts | None:
        """The licence scanned at this register in the last ten minutes (then it is forgotten)."""
        hit = self.scanned.get(register_id)
        if hit is None or trio.current_time() - hit[0] > SCANNED_FOR:
            self.scanned.pop(register_id, None)
            return None
        return hit[1]

    def _facts(self, lic: aamva.DriverLicence) -> core.LicenceFacts:
        return core.LicenceFacts(
            id_hash=inv.id_hash(self.key, lic.jurisdiction, lic.document_number),
            given_name=lic.given_name,
            family_name=lic.family_name,
            birth_date=lic.date_of_birth,
            expires_on=lic.expiry,
            jurisdiction=lic.jurisdiction,
        )

    def licence_facts(self, raw: str) -> core.LicenceFacts:
        try:
            lic = aamva.parse_licence(raw)
        except aamva.AamvaError as exc:
            raise BadRequest(f"That is not a readable licence: {exc}", field="licence") from None
        return self._facts(lic)

    async def enrol(
        self, facts: core.LicenceFacts, form: core.EnrolForm, *, staff: str, where: str, customer_type: str
    ) -> Customer:
        store = self.hub.store
        now = datetime.now(UTC)

        def fn(txn: lmdb.Transaction) -> Customer:
            cid = txn.get(text(facts.id_hash), db=store.db("customers_by_id_hash"))
            existing = tget(txn, store, "customers", bytes(cid), Customer) if cid is not None else None
            if existing is not None and existing.merged_into:
                existing = tget(txn, store, "customers", text(existing.merged_into), Customer) or existing
            result = core.enrol(
                facts,
                form,
                key=self.key,
                staff=staff,
                where=where,
                now=now,
                customer_type=customer_type,
                existing=existing,
                # the id an anonymous visit already used (hub.sale.context): earlier purchases stay linked
                new_id=facts.id_hash[:24],
            )
            if isinstance(result, Refusal):
                raise refused(result)
            if result.phone_hash:
                other = txn.get(records.PHONE + text(result.phone_hash), db=store.db("customer_index"))
                if other is not None and bytes(other).decode() != result.id:
                    raise CustomerRefused(
                        "Another customer record has this phone number: look them up, and merge the two if "
                        "they are the same person.",
                        code="phone_in_use",
                    )
            records.save(txn, store, result, existing)
            audit.append(
                txn,
                store,
                "customer_enrolled" if existing is None else "customer_re_enrolled",
                staff=staff,
                register=where,
                detail={
                    "customer": result.id,
                    "consents": {k: core.has_consent(result, k) for k in core.CONSENT_KINDS},
                    "contact_kept": {"phone": bool(result.phone), "email": bool(result.email)},
                },
            )
            self._crm_upsert(txn, result, existing, now)
            return result

        c: Customer = await self.hub.writer.write(fn, label="customer")
        self.wake_crm()
        return c

    async def update(
        self,
        customer_id: str,
        *,
        staff: str,
        where: str,
        reason: str,
        phone: str | None = None,
        email: str | None = None,
        consents: dict[str, bool] | None = None,
        groups: list[str] | None = None,
        note: str = "",
    ) -> Customer:
        store = self.hub.store
        now = datetime.now(UTC)

        def fn(txn: lmdb.Transaction) -> Customer:
            before = tget(txn, store, "customers", text(customer_id), Customer)
            if before is None or before.merged_into:
                raise NotFound("There is no such customer.")
            c = before
            changed: list[str] = []
            for kind, granted in (consents or {}).items():
                if kind not in core.CONSENT_KINDS:
                    raise BadRequest(f"Unknown consent {kind!r}.", field="consents")
                if core.has_consent(c, kind) != granted:
                    c = core.change_consent(c, kind, granted, staff=staff, where=where, now=now)  # type: ignore[arg-type]
                    changed.append(f"consent:{kind}={'yes' if granted else 'no'}")
            if not core.has_consent(c, "profile"):
                raise CustomerRefused(
                    "Without consent to keep a profile the record is deleted, not kept: ask a manager to "
                    "delete it.",
                    code="profile_consent_needed",
                )
            if phone is not None:
                if phone.strip():
                    p = core.normalize_phone(phone)
                    if isinstance(p, Refusal):
                        raise refused(p)
                    contact = core.has_consent(c, "sms") or core.has_consent(c, "marketing")
                    c = msgspec.structs.replace(
                        c, phone_hash=core.phone_hash(self.key, p), phone=p if contact else ""
                    )
                else:
                    c = msgspec.structs.replace(c, phone_hash="", phone="")
                changed.append("phone")
            if email is not None:
                if email.strip():
                    e = core.normalize_email(email)
                    if isinstance(e, Refusal):
                        raise refused(e)
                    c = msgspec.structs.replace(c, email=e if core.has_consent(c, "marketing") else "")
                else:
                    c = msgspec.structs.replace(c, email="")
                changed.append("email")
            if groups is not None:
                unknown = [g for g in groups if g not in core.GROUPS]
                if unknown:
                    raise BadRequest(f"Unknown customer group {unknown[0]!r}.", field="groups")
                c = msgspec.structs.replace(c, groups=tuple(sorted(set(groups))))
                changed.append("groups")
            if note.strip():
                c = msgspec.structs.replace(
                    c, notes=c.notes + (core.CustomerNote(text=note.strip()[:500], at=now, staff=staff),)
                )
                changed.append("note")
            records.save(txn, store, c, before)
            audit.append(
                txn,
                store,
                "customer_changed",
                staff=staff,
                register=where,
                detail={"customer": customer_id, "changed": changed, "reason": reason},
            )
            self._crm_upsert(txn, c, before, now)
            return c

        c: Customer = await self.hub.writer.write(fn, label="customer")
        self.wake_crm()
        return c

    async def merge(self, keep_id: str, duplicate_id: str, *, staff: str, reason: str) -> Customer:
        store = self.hub.store
        now = datetime.now(UTC)

        def fn(txn: lmdb.Transaction) -> Customer:
            keep = tget(txn, store, "customers", text(keep_id), Customer)
            dup = tget(txn, store, "customers", text(duplicate_id), Customer)
            if keep is None or dup is None:
                raise NotFound("Both customer records must exist.")
            result = core.merge(keep, dup, staff=staff, now=now)
            if isinstance(result, Refusal):
                raise refused(result)
            merged, gone = result
            records.save(txn, store, gone, dup)
            records.save(txn, store, merged, keep)
            # the duplicate's licence now finds the kept record
            if dup.id_hash:
                txn.put(text(dup.id_hash), text(keep.id), db=store.db("customers_by_id_hash"))
            moved = records.move_ledger(txn, store, dup.id, keep.id)
            if dup.loyalty_points:
                records.add_loyalty_entry(
                    txn,
                    store,
                    loyalty.LoyaltyEntry(
                        customer_id=keep.id,
                        at=now,
                        delta=dup.loyalty_points,
                        balance=merged.loyalty_points,
                        reason="merged",
                        staff=staff,
                        note=f"from {dup.id}",
                    ),
                )
            audit.append(
                txn,
                store,
                "customers_merged",
                staff=staff,
                detail={"kept": keep.id, "merged": dup.id, "purchases_moved": moved, "reason": reason},
            )
            self._crm_upsert(txn, merged, keep, now)
            return merged

        c: Customer = await self.hub.writer.write(fn, label="customer")
        self.wake_crm()
        return c

    async def send_sms(self, customer_id: str, text_: str, *, staff: str) -> dict[str, Any]:
        """Ask the CRM to text the customer: only with their SMS consent, never otherwise."""
        c = records.resolve(self.hub.store, customer_id)
        if c is None:
            raise NotFound("There is no such customer.")
        if not core.may_text(c):
            raise CustomerRefused(
                "This customer has not agreed to text messages: no SMS is sent.", code="no_sms_consent"
            )
        if self.hub.config.crm is None:
            raise CustomerRefused("No CRM or SMS service is configured ([crm] in store.toml).", code="no_crm")
        store = self.hub.store
        now = datetime.now(UTC)
        cfg = self.hub.config.store

        def fn(txn: lmdb.Transaction) -> dict[str, Any]:
            seq = next_seq(txn, store, "crm_outbox")
            event = crm_store.message_event(
                c, text_, licence=cfg.licence, store_name=cfg.name, now=now, seq_hint=seq
            )
            crm_store.enqueue(txn, store, event, c.id, now)
            audit.append(
                txn,
                store,
                "customer_sms_requested",
                staff=staff,
                detail={"customer": c.id, "event": event.event_id},
            )
            return {"queued": event.event_id}

        out: dict[str, Any] = await self.hub.writer.write(fn, label="customer")
        self.wake_crm()
        return out

    # ---- retention ----
    async def purge(
        self, *, now: datetime | None = None, staff: str = "", trigger: str = "nightly"
    ) -> dict[str, Any]:
        """Remove every customer record past the jurisdiction's retention period, and audit each one."""
        now = now or datetime.now(UTC)
        store = self.hub.store
        j = self.sale.jurisdiction
        days = self.profile_days()
        due = core.purge_list(records.all_customers(store), profile_days=days, now=now)

        def fn(txn: lmdb.Transaction) -> list[dict[str, Any]]:
            removed: list[dict[str, Any]] = []
            for c in due:
                last = core.last_activity(c)
                counts = records.purge(txn, store, c.id)
                if counts is None:
                    continue
                detail = {
                    "customer": c.id,
                    "last_activity": last.isoformat() if last else None,
                    "retention_days": days,
                    "jurisdiction": j.code,
                    "rule": j.check_in.retention.profile_source,
                    **counts,
                }
                audit.append(txn, store, "customer_purged", staff=staff, detail=detail)
                removed.append(detail)
            audit.append(
                txn,
                store,
                "customer_purge_run",
                staff=staff,
                detail={
                    "trigger": trigger,
                    "removed": len(removed),
                    "retention_days": days,
                    "jurisdiction": j.code,
                },
            )
            return removed

        removed = await self.hub.writer.write(fn, label="purge")
        self.last_purge = {"at": now.isoformat(), "removed": len(removed), "trigger": trigger}
        log.info("customer purge (%s): removed %d records past %d days", trigger, len(removed), days)
        return {"removed": removed, "retention_days": days, "jurisdiction": j.code}

    async def nightly(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started(self)
        zone = self.hub.config.zone
        while True:
            now = datetime.now(UTC)
            local = now.astimezone(zone)
            run = datetime.combine(local.date(), PURGE_AT, tzinfo=zone)
            if run <= local:
                run = datetime.combine(local.date() + timedelta(days=1), PURGE_AT, tzinfo=zone)
            await trio.sleep((run - local).total_seconds())
            await self.purge()
