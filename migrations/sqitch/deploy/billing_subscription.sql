-- Deploy raxx_queue:billing_subscription to pg
BEGIN;

CREATE TABLE billing_subscription (
    stripe_subscription_id text NOT NULL,
    -- no foreign key: subscription events may arrive before their customer's
    stripe_customer_id text NOT NULL,
    status text NOT NULL,
    price_id text,
    plan_tier text NOT NULL,
    current_period_start timestamptz,
    current_period_end timestamptz,
    cancel_at_period_end boolean NOT NULL DEFAULT false,
    trial_end timestamptz,
    canceled_at timestamptz,
    ended_at timestamptz,
    grace_until timestamptz,
    payment_failure_count integer NOT NULL DEFAULT 0,
    last_payment_failed_at timestamptz,
    last_paid_at timestamptz,
    stripe_created_at timestamptz,
    source_event_created_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_subscription_pkey PRIMARY KEY (stripe_subscription_id),
    CONSTRAINT billing_subscription_status_check CHECK (status IN (
        'incomplete', 'incomplete_expired', 'trialing', 'active',
        'past_due', 'canceled', 'unpaid', 'paused')),
    CONSTRAINT billing_subscription_plan_tier_check CHECK (plan_tier IN ('free', 'pro', 'pro_plus')),
    CONSTRAINT billing_subscription_payment_failure_count_check CHECK (payment_failure_count >= 0)
);

CREATE INDEX billing_subscription_stripe_customer_id_idx
    ON billing_subscription (stripe_customer_id);

COMMIT;
