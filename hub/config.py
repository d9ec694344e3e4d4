"""store.toml: one file says what this store is, which registers and devices it has, and where it keeps data.

Decoded with msgspec into Structs, so an invalid file is refused with the field's path and what was expected.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msgspec

from hub.domain.loyalty import LoyaltyProgram, problems
from hub.domain.promotions import Promotion
from hub.domain.tax import TaxTable

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]


class ConfigError(ValueError):
    """The configuration is not usable; the message names the field and the expected value."""


class StoreSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    licence: str
    jurisdiction: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
    time_zone: str = "UTC"
    address: str = ""
    medical_licence: str = ""
    # how long a register may idle before staff must log in again
    session_idle_minutes: Annotated[int, msgspec.Meta(ge=1, le=720)] = 30
    # local opening hours (the store's time zone): a disconnected register pages only while the store is open
    opening_hours: Annotated[str, msgspec.Meta(pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$")] = "08:00-22:00"


class ServerSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    http_port: Port = 8080
    ws_port: Port = 8765
    # browsers may only open the live protocol from these origins; empty = the hub's own HTTP origin(s)
    allowed_origins: list[str] = []
    tls_cert: str = ""
    tls_key: str = ""
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
    heartbeat_seconds: Annotated[float, msgspec.Meta(gt=0)] = 15.0
    # in demo mode the register page shows a panel that simulates scans of demo IDs and packages
    demo: bool = False
    # "required": `storehub run` refuses plain ws:// and http:// on an address other than loopback (a
    # store LAN carries PINs and session tokens); "off" is the explicit, deliberate exception
    tls: Literal["required", "off"] = "required"
    # bounded resources of the live protocol: open connections, how long a connection may stay unpaired
    # without saying anything, how deep a JSON message may nest
    max_connections: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 500
    unpaired_idle_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 60.0
    max_json_depth: Annotated[int, msgspec.Meta(ge=4, le=256)] = 32


class StorageSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "/var/lib/storehub"
    map_size_mb: Annotated[int, msgspec.Meta(ge=16)] = 1024
    # durability: LMDB sync + metasync on every commit; only ever turn off for throwaway benchmarks
    durable: bool = True
    max_batch: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 512
    reader_check_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    # where `storehub backup` (ops/storehub-backup.timer) writes its copies and leaves its outcome for /metrics
    backup_dir: str = "/var/backups/storehub"
    # how often the running hub re-verifies the audit chain (the result is a metric and an alert)
    audit_verify_seconds: Annotated[float, msgspec.Meta(gt=0)] = 3600.0


# what a paired screen is: a register, or a handheld that picks online orders (issue 14)
RegisterKind = Literal["register", "picker"]


class RegisterSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Identifier
    name: str = ""
    scale: str = ""
    scanner: str = ""
    printer: str = ""
    label_printer: str = ""
    payment_terminal: str = ""
    # a handheld that picks online orders is enrolled and logged in like a register (issue 14)
    kind: RegisterKind = "register"


class DeviceSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: Identifier
    kind: Literal["scale", "scanner", "printer", "label_printer", "payment_terminal"]
    # /dev/ttyUSB0, /dev/serial/by-id/..., socket://host:port, tcp://host:9100, or sim:<protocol>
    port: str = ""
    protocol: str = ""
    baudrate: Annotated[int, msgspec.Meta(gt=0)] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    suffix: str = "\r\n"
    # legal-for-trade certificate of the scale (NTEP CC or the state's), printed on weighed lines
    certificate: str = ""
    poll_seconds: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    # payment terminals (README "Card terminals and pay-by-bank"): "generic" speaks drivers/payment.py's
    # line JSON at port = tcp://host:port; "spin" is Dejavoo SPIn REST at port = the SPIn proxy's URL
    driver: Literal["generic", "spin"] = "generic"
    tpn: str = ""  # SPIn terminal profile number
    auth_key: str = ""  # SPIn auth key: kept out of logs
    payment_type: Literal["Debit", "Credit", "Card"] = "Debit"
    # the terminal's own wait for the customer; the register waits longer (see PaymentTerminalConfig.wait_s)
    charge_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=200)] = 90.0
    # cashless ATM on this terminal: withdrawals rounded up to this increment, plus this fee (0 = off)
    cashless_atm_increment_cents: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    cashless_atm_fee_cents: Annotated[int, msgspec.Meta(ge=0, le=2_000)] = 0


class StateSystemSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["metrc", "biotrack-2014", "biotrack-rest", "none"] = "none"
    base_url: str = ""
    license_number: str = ""
    vendor_key: str = ""
    user_key: str = ""
    username: str = ""
    password: str = ""
    ubi: str = ""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # BioTrack's REST API differs by state: "2022" (New Mexico, Trace v3) or "2024"
    biotrack_api: Literal["2022", "2024"] = "2022"
    # The state facility the hub reports to: its state and its time zone (Metrc's SalesDateTime is "in the
    # same time zone as the Facility"). Empty = the store's; a store and its facility may not disagree.
    facility_state: str = ""
    facility_time_zone: str = ""


class PayByBankSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A pay-by-bank app as a tender (drivers/paybybank.py): the customer approves on a phone."""

    provider: Literal["none", "aeropay"] = "none"
    base_url: str = ""
    merchant_id: str = ""
    api_key: str = ""
    api_secret: str = ""  # kept out of logs
    # how long the customer has to approve on the phone before the request is cancelled
    approve_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=900)] = 180.0
    poll_seconds: Annotated[float, msgspec.Meta(gt=0, le=30)] = 2.0


class SecuritySection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # keyed hashes of ID numbers use this secret; keep it out of backups of the config if you can
    id_hash_key: str = ""
    # without id_hash_key the key is generated into this file on first start (default: id_hash.key beside
    # store.toml); it never lives in the store, so a copy of data.mdb alone cannot test ID numbers
    id_hash_key_file: str = ""
    lockout_after_failures: Annotated[int, msgspec.Meta(ge=1)] = 5
    lockout_minutes: Annotated[int, msgspec.Meta(ge=1)] = 5
    # pairing attempts allowed per minute on one connection and from one source address
    pairing_attempts_per_connection: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 5
    pairing_attempts_per_address: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 20


class CrmSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The CRM or loyalty service's webhook (hub/domain/crm.py documents the JSON it receives)."""

    url: str
    secret: str  # HMAC-SHA256 signing secret shared with the service
    style: Literal["generic", "springbig", "alpineiq"] = "generic"
    api_key: str = ""  # sent as x-apikey where the service wants one
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0


class ChannelSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An e-commerce channel that sends orders (the store's web menu, Jane, Weedmaps, Dutchie Plus…)."""

    id: Identifier
    secret: Annotated[str, msgspec.Meta(min_length=16)]  # the shared HMAC-SHA256 key
    callback_url: str = ""  # order status changes are POSTed here, signed the same way
    name: str = ""


class OrdersSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # an order not collected this long after its promised time expires and releases its stock
    expire_after_minutes: Annotated[int, msgspec.Meta(ge=1)] = 24 * 60
    max_skew_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 300
    auto_accept: bool = False
    callback_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0


class NoticesSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Customer notices (accepted, substitution, ready, cancelled). "sink" keeps them in the store for the
    back office (the demo); "none" sends nothing."""

    email: Literal["smtp", "sink", "none"] = "sink"
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 25
    smtp_from: str = "orders@store.invalid"
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    sms: Literal["http", "sink", "none"] = "sink"
    # the gateway gets POST {"to": "+1…", "message": "…"} with ``Authorization: Bearer <sms_token>``
    sms_url: str = ""
    sms_token: str = ""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0


ChainId = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class ChainSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """This store as one of a chain: its events go to headquarters over NATS JetStream (hub/chain/)."""

    chain: ChainId  # the chain's id; subjects are chain.<chain>.<store>.*
    store_id: ChainId  # this store's id in the chain (its NATS user may publish only as this store)
    nats_url: str = "nats://127.0.0.1:4222"  # HQ's server, or the store's own leaf node
    user: str = ""
    password: str = ""
    creds_file: str = ""  # NATS .creds (nkey + JWT), instead of user/password
    tls_ca: str = ""  # verify the server with this CA (tls:// URLs)
    tls_cert: str = ""  # client certificate, when the server asks for one
    tls_key: str = ""
    batch: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 256
    poll_seconds: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    catalogue_poll_seconds: Annotated[float, msgspec.Meta(gt=0)] = 2.0
    status_seconds: Annotated[float, msgspec.Meta(gt=0)] = 5.0


class StoreConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    store: StoreSection
    server: ServerSection = msgspec.field(default_factory=ServerSection)
    storage: StorageSection = msgspec.field(default_factory=StorageSection)
    registers: list[RegisterSection] = []
    devices: list[DeviceSection] = []
    state_system: StateSystemSection = msgspec.field(default_factory=StateSystemSection)
    pay_by_bank: PayByBankSection = msgspec.field(default_factory=PayByBankSection)
    security: SecuritySection = msgspec.field(default_factory=SecuritySection)
    # the store's tax table (hub/domain/tax.py TaxTable): prices_include_tax, name, [[taxes.rules]]
    taxes: dict[str, Any] | None = None
    # promotions as data (hub/domain/promotions.py): [[promotions]] kind = "category_percent" | "buy_n_get_one"
    promotions: list[dict[str, Any]] = []
    # loyalty as data (hub/domain/loyalty.py LoyaltyProgram): points_per_dollar, excluded_categories, tiers...
    loyalty: dict[str, Any] | None = None
    crm: CrmSection | None = None
    channels: list[ChannelSection] = []
    orders: OrdersSection = msgspec.field(default_factory=OrdersSection)
    notices: NoticesSection = msgspec.field(default_factory=NoticesSection)
    # one store of a chain (hub/chain/): ship events to HQ, take catalogue and prices from it
    chain: ChainSection | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.store.time_zone)

    @property
    def facility_time_zone(self) -> str:
        """The zone the state's local times are written in (Metrc ``SalesDateTime``)."""
        return self.state_system.facility_time_zone or self.store.time_zone

    @property
    def data_dir(self) -> Path:
        return Path(self.storage.data_dir)

    def register(self, register_id: str) -> RegisterSection | None:
        return next((r for r in self.registers if r.id == register_id), None)

    def device(self, device_id: str) -> DeviceSection | None:
        return next((d for d in self.devices if d.id == device_id), None)


def _check(config: StoreConfig) -> StoreConfig:
    try:
        ZoneInfo(config.store.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"store.time_zone: unknown time zone {config.store.time_zone!r}; expected an IANA name "
            "such as 'America/Denver'"
        ) from None
    start, _, end = config.store.opening_hours.partition("-")
    if not all(_clock_ok(t) for t in (start, end)):
        raise ConfigError(
            f"store.opening_hours: {config.store.opening_hours!r} is not a local time range such as "
            "'08:00-22:00' ('00:00-24:00': always open)"
        )
    seen: set[str] = set()
    for i, reg in enumerate(config.registers):
        if reg.id in seen:
            raise ConfigError(f"registers[{i}].id: register {reg.id!r} is listed twice")
        seen.add(reg.id)
    device_ids = {d.id for d in config.devices}
    if len(device_ids) != len(config.devices):
        raise ConfigError("devices: a device id is listed twice")
    for i, reg in enumerate(config.registers):
        for attr in ("scale", "scanner", "printer", "label_printer", "payment_terminal"):
            ref = getattr(reg, attr)
            if ref and ref not in device_ids:
                raise ConfigError(f"registers[{i}].{attr}: no device with id {ref!r} in [[devices]]")
    if config.taxes is not None:
        try:
            msgspec.convert(config.taxes, TaxTable)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"taxes: {humane(str(exc))}") from None
    if config.promotions:
        for i, promo in enumerate(config.promotions):
            try:
                msgspec.convert(promo, Promotion)
            except msgspec.ValidationError as exc:
                raise ConfigError(f"promotions[{i}]: {humane(str(exc))}") from None
    if config.loyalty is not None:
        try:
            program = msgspec.convert(config.loyalty, LoyaltyProgram)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"loyalty: {humane(str(exc))}") from None
        wrong = problems(program)
        if wrong:
            raise ConfigError(f"loyalty: {wrong[0]}")
    if config.crm is not None and not config.crm.url.startswith(("http://", "https://")):
        raise ConfigError("crm.url: the webhook is an http:// or https:// URL")
    if len({c.id for c in config.channels}) != len(config.channels):
        raise ConfigError("channels: a channel id is listed twice")
    for i, ch in enumerate(config.channels):
        _check_http_url(f"channels[{i}].callback_url", ch.callback_url)
    _check_http_url("notices.sms_url", config.notices.sms_url)
    if config.notices.sms == "http" and not config.notices.sms_url:
        raise ConfigError('notices.sms_url: sms = "http" needs the gateway\'s URL')
    if bool(config.server.tls_cert) != bool(config.server.tls_key):
        raise ConfigError("server.tls_cert and server.tls_key: give both or neither")
    for i, dev in enumerate(config.devices):
        _check_payment_terminal(i, dev)
    bank = config.pay_by_bank
    if bank.provider != "none":
        for name in ("base_url", "merchant_id", "api_key", "api_secret"):
            if not getattr(bank, name):
                raise ConfigError(f"pay_by_bank.{name}: {bank.provider} needs it")
    check_facility(config)
    return config


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_tls(config: StoreConfig) -> None:
    """PINs and session tokens cross the store LAN: plain ws:// and http:// only on loopback, or when the
    configuration says so in as many words (``tls = "off"``)."""
    s = config.server
    if s.tls_cert or s.tls == "off" or is_loopback(s.host):
        return
    raise ConfigError(
        f"server.tls: the hub would listen on {s.host} without TLS; run `storehub tls init --config FILE` "
        'and set server.tls_cert and server.tls_key, or set tls = "off" under [server] to accept plain '
        "ws:// and http:// on this network"
    )


def _check_payment_terminal(i: int, dev: DeviceSection) -> None:
    """SPIn documents the TPN as 10-12 characters and the auth key as 10 ("SPIn REST API Methods")."""
    if dev.kind != "payment_terminal" or dev.driver != "spin":
        return
    if not dev.port.startswith(("http://", "https://")):
        raise ConfigError(
            f"devices[{i}].port: a SPIn terminal's port is the SPIn proxy URL (https://spinpos.net)"
        )
    if not 10 <= len(dev.tpn) <= 12:
        raise ConfigError(f"devices[{i}].tpn: the terminal profile number has 10 to 12 characters")
    if len(dev.auth_key) != 10:
        raise ConfigError(f"devices[{i}].auth_key: the SPIn auth key has 10 characters")


def _clock_ok(hhmm: str) -> bool:
    hours, minutes = (int(x) for x in hhmm.split(":"))
    return (hours, minutes) == (24, 0) or (0 <= hours < 24 and 0 <= minutes < 60)


def check_facility(config: StoreConfig) -> None:
    """A store and the state facility it reports to are in one place: the same state, the same time zone.

    Metrc writes ``SalesDateTime`` in the facility's local time; a facility in another zone than the store
    would put every sale at the wrong hour. Called when the config is read and again when the state channel
    starts (the demo points the hub at its sandbox facility after reading the config)."""
    st = config.state_system
    if st.facility_time_zone:
        try:
            ZoneInfo(st.facility_time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"state_system.facility_time_zone: unknown time zone {st.facility_time_zone!r}"
            ) from None
        if st.facility_time_zone != config.store.time_zone:
            raise ConfigError(
                f"state_system.facility_time_zone is {st.facility_time_zone!r} but store.time_zone is "
                f"{config.store.time_zone!r}: a store reports to a facility in its own time zone"
            )
    if st.facility_state and st.facility_state.upper() != config.store.jurisdiction:
        raise ConfigError(
            f"state_system.facility_state is {st.facility_state!r} but store.jurisdiction is "
            f"{config.store.jurisdiction!r}: a store reports to a facility of its own state"
        )


def _check_http_url(field: str, url: str) -> None:
    """An address the hub POSTs to (a channel's callbacks, the SMS gateway): refused at start-up rather than
    by every delivery attempt afterwards. Empty means none."""
    if not url:
        return
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise ConfigError(f"{field}: {url!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host or any(c.isspace() for c in url):
        raise ConfigError(f"{field}: {url!r} must be an http:// or https:// URL with a host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"{field}: {url!r} has no valid port")


def parse_config(text: str, *, source: str = "store.toml") -> StoreConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        config = msgspec.convert(raw, StoreConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {humane(str(exc))}") from None
    return _check(config)


def load_config(path: str | Path) -> StoreConfig:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{p}: line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; TOML files are UTF-8 text"
        ) from None
    config = parse_config(text, source=str(p))
    if not config.security.id_hash_key_file:
        config.security.id_hash_key_file = str(p.resolve().parent / "id_hash.key")
    return config


def preflight(config: StoreConfig) -> None:
    """What can only be checked on this machine, before the hub starts: the TLS files load, the data
    directory can be made and written, the host resolves. Each failure names its field."""
    s = config.server
    if s.tls_cert:
        for field, path in (("server.tls_cert", s.tls_cert), ("server.tls_key", s.tls_key)):
            if not Path(path).is_file():
                raise ConfigError(f"{field}: no file at {path}")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(s.tls_cert, s.tls_key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"server.tls_cert: {s.tls_cert} and {s.tls_key} are not a certificate and its key ({exc})"
            ) from None
    data = config.data_dir
    try:
        data.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"storage.data_dir: cannot create {data}: {exc.strerror}") from None
    if not os.access(data, os.W_OK | os.X_OK):
        raise ConfigError(f"storage.data_dir: {data} is not writable by this user")
    try:
        socket.getaddrinfo(s.host, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"server.host: cannot resolve {s.host!r} ({exc})") from None


def humane(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.server.http_port`": lead with the field
    if " - at `$." in message:
        what, where = message.rsplit(" - at `$.", 1)
        return f"{where.rstrip('`')}: {what}"
    return message
