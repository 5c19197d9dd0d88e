-- Deploy raxx_queue:processed_stripe_events to pg
BEGIN;

CREATE TABLE processed_stripe_events (
    event_id text NOT NULL,
    type text NOT NULL,
    outcome text NOT NULL,
    stripe_customer_id text,
    event_created_at timestamptz NOT NULL,
    api_version text,
    livemode boolean NOT NULL DEFAULT false,
    -- webhook, replay or reconcile
    source text NOT NULL DEFAULT 'webhook',
    request_id text,
    payload jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT processed_stripe_events_pkey PRIMARY KEY (event_id),
    CONSTRAINT processed_stripe_events_outcome_check
        CHECK (outcome IN ('applied', 'stale', 'ignored')),
    CONSTRAINT processed_stripe_events_source_check
        CHECK (source IN ('webhook', 'replay', 'reconcile'))
);

CREATE INDEX processed_stripe_events_received_at_idx ON processed_stripe_events (received_at);

COMMIT;
