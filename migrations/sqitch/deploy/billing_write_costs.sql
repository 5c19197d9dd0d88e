-- Deploy raxx_queue:billing_write_costs to pg
-- requires: billing_invoice_mirror
-- requires: billing_event_catchup
-- requires: billing_access_policy
-- requires: billing_event_ingest
BEGIN;

-- Writing an event's rows costs less, with the same rules.
--
-- 1. The value checks of the rows an event writes are domains. A table's CHECK
--    constraint is read back from its stored text and planned again by every statement
--    that writes the table (ExecConstraints, once per statement execution); a domain's
--    check is planned once per session and kept in the type cache. Same values allowed,
--    same error (check_violation), named after the domain. Two stay table constraints:
--    an audit row's seal (across columns) and the mirror's versions (a function returns
--    the version as bigint, which RETURN QUERY would not take from a domain).
-- The domains are created bare and their checks added once the columns use them:
-- changing a column to a domain that has a check rewrites the whole table under an
-- exclusive lock (every stored event, with its payload, at deploy time). Added NOT
-- VALID, the checks hold for every value written from now on without a scan of the
-- rows already there, which the table checks they replace held to the same rules.
CREATE DOMAIN billing_event_outcome AS text;
CREATE DOMAIN billing_event_source AS text;
CREATE DOMAIN billing_actor AS text;
CREATE DOMAIN billing_subscription_status AS text;
CREATE DOMAIN billing_mirror_status AS text;
CREATE DOMAIN billing_plan_tier AS text;
-- the tier a suspended customer had: a paid one, or none
CREATE DOMAIN billing_paid_tier AS text;
CREATE DOMAIN billing_access_state AS text;
CREATE DOMAIN billing_invoice_status AS text;
CREATE DOMAIN billing_failure_count AS integer;

-- The two views over subscriptions are recreated as they are, over the new column types.
CREATE TEMPORARY TABLE billing_write_costs_views ON COMMIT DROP AS
SELECT 'billing_current_subscription' AS name,
       pg_get_viewdef('billing_current_subscription'::regclass) AS def, 1 AS n
UNION ALL
SELECT 'billing_customer_state', pg_get_viewdef('billing_customer_state'::regclass), 2;
DROP VIEW billing_customer_state;
DROP VIEW billing_current_subscription;

ALTER TABLE processed_stripe_events
    DROP CONSTRAINT processed_stripe_events_outcome_check,
    DROP CONSTRAINT processed_stripe_events_source_check,
    ALTER COLUMN outcome TYPE billing_event_outcome,
    ALTER COLUMN source TYPE billing_event_source;
ALTER TABLE billing_action_log
    DROP CONSTRAINT billing_action_log_actor_check,
    ALTER COLUMN actor TYPE billing_actor;
ALTER TABLE billing_subscription
    DROP CONSTRAINT billing_subscription_status_check,
    DROP CONSTRAINT billing_subscription_plan_tier_check,
    DROP CONSTRAINT billing_subscription_payment_failure_count_check,
    ALTER COLUMN status TYPE billing_subscription_status,
    ALTER COLUMN plan_tier TYPE billing_plan_tier,
    ALTER COLUMN payment_failure_count TYPE billing_failure_count;
ALTER TABLE billing_subscription_mirror
    DROP CONSTRAINT billing_subscription_mirror_status_check,
    DROP CONSTRAINT billing_subscription_mirror_plan_tier_check,
    DROP CONSTRAINT billing_subscription_mirror_access_check,
    DROP CONSTRAINT billing_subscription_mirror_locked_from_tier_check,
    ALTER COLUMN status TYPE billing_mirror_status,
    ALTER COLUMN plan_tier TYPE billing_plan_tier,
    ALTER COLUMN access TYPE billing_access_state,
    ALTER COLUMN locked_from_tier TYPE billing_paid_tier;
ALTER TABLE billing_invoice
    DROP CONSTRAINT billing_invoice_status_check,
    ALTER COLUMN status TYPE billing_invoice_status;

DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT name, def FROM billing_write_costs_views ORDER BY n LOOP
        EXECUTE format('CREATE VIEW %I AS %s', v.name, v.def);
    END LOOP;
END;
$$;

ALTER DOMAIN billing_event_outcome ADD CONSTRAINT billing_event_outcome_check
    CHECK (VALUE IN ('applied', 'stale', 'ignored')) NOT VALID;
ALTER DOMAIN billing_event_source ADD CONSTRAINT billing_event_source_check
    CHECK (VALUE IN ('webhook', 'replay', 'reconcile', 'catchup', 'thin')) NOT VALID;
ALTER DOMAIN billing_actor ADD CONSTRAINT billing_actor_check
    CHECK (VALUE IN ('stripe', 'raptor', 'console', 'reconcile', 'system', 'catchup')) NOT VALID;
ALTER DOMAIN billing_subscription_status ADD CONSTRAINT billing_subscription_status_check
    CHECK (VALUE IN ('incomplete', 'incomplete_expired', 'trialing', 'active', 'past_due',
                     'canceled', 'unpaid', 'paused')) NOT VALID;
ALTER DOMAIN billing_mirror_status ADD CONSTRAINT billing_mirror_status_check
    CHECK (VALUE IN ('none', 'incomplete', 'incomplete_expired', 'trialing', 'active',
                     'past_due', 'canceled', 'unpaid', 'paused')) NOT VALID;
ALTER DOMAIN billing_plan_tier ADD CONSTRAINT billing_plan_tier_check
    CHECK (VALUE IN ('free', 'pro', 'pro_plus')) NOT VALID;
ALTER DOMAIN billing_paid_tier ADD CONSTRAINT billing_paid_tier_check
    CHECK (VALUE IN ('pro', 'pro_plus')) NOT VALID;
ALTER DOMAIN billing_access_state ADD CONSTRAINT billing_access_state_check
    CHECK (VALUE IN ('active', 'trialing', 'grace', 'suspended', 'ended', 'none')) NOT VALID;
ALTER DOMAIN billing_invoice_status ADD CONSTRAINT billing_invoice_status_check
    CHECK (VALUE IN ('draft', 'open', 'paid', 'uncollectible', 'void')) NOT VALID;
ALTER DOMAIN billing_failure_count ADD CONSTRAINT billing_failure_count_check
    CHECK (VALUE >= 0) NOT VALID;

-- 2. An event's short text columns stay in its row. The row is over TOAST's threshold
--    (its compressed payload is about 3 KB), so Postgres moved every other text value
--    longer than a TOAST pointer (the event id, a type such as
--    customer.subscription.updated) out to the TOAST table first: a TOAST row and a TOAST
--    index entry each, almost two per event, that made the row no smaller than it had to
--    be. MAIN keeps them inline; only a row too large for a page would move them.
ALTER TABLE processed_stripe_events
    ALTER COLUMN event_id SET STORAGE MAIN,
    ALTER COLUMN type SET STORAGE MAIN,
    ALTER COLUMN outcome SET STORAGE MAIN,
    ALTER COLUMN stripe_customer_id SET STORAGE MAIN,
    ALTER COLUMN api_version SET STORAGE MAIN,
    ALTER COLUMN source SET STORAGE MAIN,
    ALTER COLUMN request_id SET STORAGE MAIN;

COMMIT;
