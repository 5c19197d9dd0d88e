-- Revert raxx_queue:billing_write_costs from pg
BEGIN;

-- The table checks come back NOT VALID: checking them would scan every table under an
-- exclusive lock, and the domains held the rows to the same rules.

CREATE TEMPORARY TABLE billing_write_costs_views ON COMMIT DROP AS
SELECT 'billing_current_subscription' AS name,
       pg_get_viewdef('billing_current_subscription'::regclass) AS def, 1 AS n
UNION ALL
SELECT 'billing_customer_state', pg_get_viewdef('billing_customer_state'::regclass), 2;
DROP VIEW billing_customer_state;
DROP VIEW billing_current_subscription;

ALTER TABLE processed_stripe_events
    ALTER COLUMN event_id SET STORAGE EXTENDED,
    ALTER COLUMN type SET STORAGE EXTENDED,
    ALTER COLUMN outcome SET STORAGE EXTENDED,
    ALTER COLUMN stripe_customer_id SET STORAGE EXTENDED,
    ALTER COLUMN api_version SET STORAGE EXTENDED,
    ALTER COLUMN source SET STORAGE EXTENDED,
    ALTER COLUMN request_id SET STORAGE EXTENDED,
    ALTER COLUMN outcome TYPE text,
    ALTER COLUMN source TYPE text,
    ADD CONSTRAINT processed_stripe_events_outcome_check
        CHECK (outcome IN ('applied', 'stale', 'ignored')) NOT VALID,
    ADD CONSTRAINT processed_stripe_events_source_check
        CHECK (source IN ('webhook', 'replay', 'reconcile', 'catchup', 'thin')) NOT VALID;
ALTER TABLE billing_action_log
    ALTER COLUMN actor TYPE text,
    ADD CONSTRAINT billing_action_log_actor_check
        CHECK (actor IN ('stripe', 'raptor', 'console', 'reconcile', 'system', 'catchup')) NOT VALID;
ALTER TABLE billing_subscription
    ALTER COLUMN status TYPE text,
    ALTER COLUMN plan_tier TYPE text,
    ALTER COLUMN payment_failure_count TYPE integer,
    ADD CONSTRAINT billing_subscription_status_check
        CHECK (status IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due',
                          'canceled', 'unpaid', 'paused')) NOT VALID,
    ADD CONSTRAINT billing_subscription_plan_tier_check
        CHECK (plan_tier IN ('free', 'pro', 'pro_plus')) NOT VALID,
    ADD CONSTRAINT billing_subscription_payment_failure_count_check
        CHECK (payment_failure_count >= 0) NOT VALID;
ALTER TABLE billing_subscription_mirror
    ALTER COLUMN status TYPE text,
    ALTER COLUMN plan_tier TYPE text,
    ALTER COLUMN access TYPE text,
    ALTER COLUMN locked_from_tier TYPE text,
    ADD CONSTRAINT billing_subscription_mirror_status_check
        CHECK (status IN ('none', 'incomplete', 'incomplete_expired', 'trialing', 'active',
                          'past_due', 'canceled', 'unpaid', 'paused')) NOT VALID,
    ADD CONSTRAINT billing_subscription_mirror_plan_tier_check
        CHECK (plan_tier IN ('free', 'pro', 'pro_plus')) NOT VALID,
    ADD CONSTRAINT billing_subscription_mirror_access_check
        CHECK (access IN ('active', 'trialing', 'grace', 'suspended', 'ended', 'none')) NOT VALID,
    ADD CONSTRAINT billing_subscription_mirror_locked_from_tier_check
        CHECK (locked_from_tier IS NULL OR locked_from_tier IN ('pro', 'pro_plus')) NOT VALID;
ALTER TABLE billing_invoice
    ALTER COLUMN status TYPE text,
    ADD CONSTRAINT billing_invoice_status_check
        CHECK (status IS NULL OR status IN ('draft', 'open', 'paid', 'uncollectible', 'void')) NOT VALID;

DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT name, def FROM billing_write_costs_views ORDER BY n LOOP
        EXECUTE format('CREATE VIEW %I AS %s', v.name, v.def);
    END LOOP;
END;
$$;

DROP DOMAIN billing_event_outcome, billing_event_source, billing_actor,
    billing_subscription_status, billing_mirror_status, billing_plan_tier, billing_paid_tier,
    billing_access_state, billing_invoice_status, billing_failure_count;

COMMIT;
