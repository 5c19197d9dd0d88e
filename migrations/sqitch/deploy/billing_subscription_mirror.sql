-- Deploy raxx_queue:billing_subscription_mirror to pg
BEGIN;

-- One row per platform customer: what Raptor's paywall sees. Written in the same
-- transaction as the change that caused it, so it is also the outbox: a row is
-- pending while version > pushed_version.
CREATE TABLE billing_subscription_mirror (
    queue_customer_id text NOT NULL,
    plan_tier text NOT NULL DEFAULT 'free',
    status text NOT NULL DEFAULT 'none',
    current_period_end timestamptz,
    grace_until timestamptz,
    entitled boolean NOT NULL DEFAULT false,
    feature_locked_at timestamptz,
    -- the tier the customer had when features were locked; cleared with feature_locked_at
    locked_from_tier text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    pushed_version bigint NOT NULL DEFAULT 0,
    push_attempts integer NOT NULL DEFAULT 0,
    next_push_at timestamptz NOT NULL DEFAULT now(),
    push_lease_until timestamptz,
    last_pushed_at timestamptz,
    last_push_error text,
    CONSTRAINT billing_subscription_mirror_pkey PRIMARY KEY (queue_customer_id),
    CONSTRAINT billing_subscription_mirror_plan_tier_check
        CHECK (plan_tier IN ('free', 'pro', 'pro_plus')),
    CONSTRAINT billing_subscription_mirror_locked_from_tier_check
        CHECK (locked_from_tier IS NULL OR locked_from_tier IN ('pro', 'pro_plus')),
    CONSTRAINT billing_subscription_mirror_status_check CHECK (status IN (
        'none', 'incomplete', 'incomplete_expired', 'trialing', 'active',
        'past_due', 'canceled', 'unpaid', 'paused')),
    CONSTRAINT billing_subscription_mirror_version_check CHECK (version >= 1 AND pushed_version >= 0)
);

CREATE INDEX billing_subscription_mirror_pending_idx
    ON billing_subscription_mirror (next_push_at)
    WHERE version > pushed_version;

CREATE INDEX billing_subscription_mirror_grace_idx
    ON billing_subscription_mirror (grace_until)
    WHERE entitled AND grace_until IS NOT NULL;

COMMIT;
