-- Deploy raxx_queue:billing_invoice to pg
BEGIN;

CREATE TABLE billing_invoice (
    stripe_invoice_id text NOT NULL,
    stripe_customer_id text NOT NULL,
    stripe_subscription_id text,
    status text,
    number text,
    currency text,
    amount_due bigint,
    amount_paid bigint,
    amount_remaining bigint,
    attempt_count integer,
    billing_reason text,
    hosted_invoice_url text,
    period_start timestamptz,
    period_end timestamptz,
    paid_at timestamptz,
    stripe_created_at timestamptz NOT NULL,
    source_event_created_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_invoice_pkey PRIMARY KEY (stripe_invoice_id),
    CONSTRAINT billing_invoice_status_check CHECK (
        status IS NULL OR status IN ('draft', 'open', 'paid', 'uncollectible', 'void'))
);

CREATE INDEX billing_invoice_customer_created_idx
    ON billing_invoice (stripe_customer_id, stripe_created_at DESC, stripe_invoice_id DESC);

COMMIT;
