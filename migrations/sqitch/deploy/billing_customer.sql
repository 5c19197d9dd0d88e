-- Deploy raxx_queue:billing_customer to pg
BEGIN;

CREATE TABLE billing_customer (
    id bigint GENERATED ALWAYS AS IDENTITY,
    queue_customer_id text,
    stripe_customer_id text,
    billing_email text,
    billing_name text,
    billing_address jsonb,
    deleted_at timestamptz,
    -- created time of the Stripe event that last wrote this row (ordering guard)
    source_event_created_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_customer_pkey PRIMARY KEY (id),
    CONSTRAINT billing_customer_queue_customer_id_key UNIQUE (queue_customer_id),
    CONSTRAINT billing_customer_stripe_customer_id_key UNIQUE (stripe_customer_id),
    CONSTRAINT billing_customer_queue_customer_id_check
        CHECK (queue_customer_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    CONSTRAINT billing_customer_identity_check
        CHECK (queue_customer_id IS NOT NULL OR stripe_customer_id IS NOT NULL)
);

COMMENT ON TABLE billing_customer IS 'Billing customers; the only table with PII columns (billing_email, billing_name, billing_address).';

COMMIT;
