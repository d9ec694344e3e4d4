-- storehub HQ schema, version 1: every store's events, exactly once, and the reports built from them.
-- Each event row is keyed by (store_id, seq): a redelivered event finds its row and changes nothing.

CREATE TABLE stores (
    store_id        text PRIMARY KEY,
    name            text NOT NULL DEFAULT '',
    time_zone       text NOT NULL DEFAULT 'UTC',
    max_seq         bigint NOT NULL DEFAULT 0,        -- highest sequence received
    events          bigint NOT NULL DEFAULT 0,        -- events received (max_seq - events = missing so far)
    last_event_at   timestamptz,                      -- when the newest received event was committed
    last_ingest_at  timestamptz,
    catalogue_version bigint NOT NULL DEFAULT 0,      -- the version the store says it runs
    status_seq      bigint NOT NULL DEFAULT 0,
    status_at       timestamptz,
    state_backlog   integer NOT NULL DEFAULT 0,
    state_dead_letter integer NOT NULL DEFAULT 0
);

CREATE TABLE events (
    store_id      text NOT NULL,
    seq           bigint NOT NULL,
    action        text NOT NULL,
    at            timestamptz NOT NULL,
    business_date date NOT NULL,
    staff         text NOT NULL DEFAULT '',
    register      text NOT NULL DEFAULT '',
    detail        jsonb NOT NULL DEFAULT '{}',
    record        jsonb,
    hash          text NOT NULL DEFAULT '',
    prev_hash     text NOT NULL DEFAULT '',
    ingested_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, seq)
);
-- only the rare actions HQ counts get an index entry (every event would slow the ingest)
CREATE INDEX events_dead_letters ON events (store_id) WHERE action = 'state_dead_letter';

CREATE TABLE sales (
    store_id        text NOT NULL,
    receipt_number  bigint NOT NULL,
    seq             bigint NOT NULL,
    business_date   date NOT NULL,
    register        text NOT NULL,
    sold_at         timestamptz NOT NULL,
    customer_id     text NOT NULL DEFAULT '',
    subtotal_cents  bigint NOT NULL,
    discount_cents  bigint NOT NULL,
    pretax_cents    bigint NOT NULL,
    tax_cents       bigint NOT NULL,
    total_cents     bigint NOT NULL,
    tendered_cents  bigint NOT NULL,
    change_cents    bigint NOT NULL,
    loyalty_earned  bigint NOT NULL DEFAULT 0,
    loyalty_redeemed bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (store_id, receipt_number)
);
CREATE INDEX sales_by_day ON sales (business_date, store_id);

CREATE TABLE sale_lines (
    store_id        text NOT NULL,
    receipt_number  bigint NOT NULL,
    line_id         integer NOT NULL,
    product_id      text NOT NULL,
    name            text NOT NULL,
    category        text NOT NULL,
    quantity        bigint NOT NULL,
    weight_mg       bigint NOT NULL,
    net_cents       bigint NOT NULL,   -- after discounts, before tax (the Z report's category basis)
    total_cents     bigint NOT NULL,
    PRIMARY KEY (store_id, receipt_number, line_id)
);

-- a void may arrive before its sale after a redelivery: reports join, nothing is updated in place
CREATE TABLE voids (
    store_id        text NOT NULL,
    receipt_number  bigint NOT NULL,
    seq             bigint NOT NULL,
    voided_at       timestamptz NOT NULL,
    business_date   date NOT NULL,
    manager_id      text NOT NULL DEFAULT '',
    reason          text NOT NULL DEFAULT '',
    PRIMARY KEY (store_id, receipt_number)
);

CREATE TABLE returns (
    store_id        text NOT NULL,
    return_number   bigint NOT NULL,
    seq             bigint NOT NULL,
    receipt_number  bigint NOT NULL,
    returned_at     timestamptz NOT NULL,
    business_date   date NOT NULL,
    refund_cents    bigint NOT NULL,
    tax_cents       bigint NOT NULL,
    PRIMARY KEY (store_id, return_number)
);

CREATE TABLE drawer_counts (
    store_id        text NOT NULL,
    session_id      text NOT NULL,
    seq             bigint NOT NULL,
    business_date   date NOT NULL,
    register        text NOT NULL DEFAULT '',
    expected_cents  bigint NOT NULL,
    counted_cents   bigint NOT NULL,
    variance_cents  bigint NOT NULL,
    signed_off      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (store_id, session_id)
);

-- latest-wins state from each store's status messages (not events)
CREATE TABLE inventory (
    store_id        text NOT NULL,
    product_id      text NOT NULL,
    name            text NOT NULL,
    category        text NOT NULL,
    units           bigint NOT NULL,
    weight_mg       bigint NOT NULL,
    as_of_seq       bigint NOT NULL,
    PRIMARY KEY (store_id, product_id)
);

-- what HQ sets: the catalogue, prices and promotions, chain-wide (scope '*') or for one store
CREATE TABLE catalogue_products (
    product_id      text PRIMARY KEY,
    doc             jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE prices (
    scope           text NOT NULL,
    product_id      text NOT NULL,
    price_cents     bigint NOT NULL CHECK (price_cents >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, product_id)
);
CREATE TABLE promotions (
    scope           text PRIMARY KEY,
    promotions      jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE catalogue_versions (
    version         bigint PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    by_user         text NOT NULL,
    note            text NOT NULL DEFAULT ''
);

-- a message HQ could not read: kept for a person, acknowledged so the stream moves on
CREATE TABLE ingest_rejects (
    id              bigserial PRIMARY KEY,
    subject         text NOT NULL,
    stream_seq      bigint NOT NULL,
    error           text NOT NULL,
    payload         bytea NOT NULL,
    at              timestamptz NOT NULL DEFAULT now()
);
