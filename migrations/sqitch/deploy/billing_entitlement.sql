-- Deploy raxx_queue:billing_entitlement to pg
-- requires: billing_entitlement@wave1
BEGIN;

-- Entitlement and the tiers' order, read by the billing reads and the mirror: the one
-- place that says what a customer may use now. The names (tiers, statuses) are those of
-- raxx_queue.vocabulary.

-- SPEC §4: entitled = status in (active, trialing) or (past_due and at < grace_until).
CREATE OR REPLACE FUNCTION billing_entitled(p_status text, p_grace_until timestamptz,
                                            p_at timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_status IN ('active', 'trialing')
        OR (p_status = 'past_due' AND p_grace_until IS NOT NULL AND p_at < p_grace_until)
$$;

-- free < pro < pro_plus: a fall in rank is a downgrade (billing_refresh_mirror locks
-- features then); a subscription of several items grants its best tier.
CREATE OR REPLACE FUNCTION billing_tier_rank(p_tier text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_tier WHEN 'pro_plus' THEN 2 WHEN 'pro' THEN 1 ELSE 0 END
$$;

-- Which of a customer's subscriptions is "current" when there are several.
CREATE OR REPLACE FUNCTION billing_status_rank(p_status text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status
        WHEN 'active' THEN 0 WHEN 'trialing' THEN 1 WHEN 'past_due' THEN 2
        WHEN 'unpaid' THEN 3 WHEN 'paused' THEN 4 WHEN 'incomplete' THEN 5
        WHEN 'canceled' THEN 6 ELSE 7 END
$$;

-- The tier a customer may use now: its subscription's tier while entitled, else free.
CREATE FUNCTION billing_usable_tier(p_entitled boolean, p_subscribed_tier text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_entitled THEN coalesce(p_subscribed_tier, 'free') ELSE 'free' END
$$;

CREATE OR REPLACE VIEW billing_current_subscription AS
SELECT DISTINCT ON (s.stripe_customer_id)
       s.*,
       billing_entitled(s.status, s.grace_until, now()) AS entitled
  FROM billing_subscription AS s
 ORDER BY s.stripe_customer_id,
          billing_entitled(s.status, s.grace_until, now()) DESC,
          billing_status_rank(s.status),
          s.current_period_end DESC NULLS LAST,
          s.stripe_created_at DESC NULLS LAST,
          s.stripe_subscription_id;

-- Every customer with its current subscription and what it may use now: the one
-- source of the billing reads and of the mirror row. A deleted customer is entitled
-- to nothing, whatever its subscriptions say.
CREATE VIEW billing_customer_state AS
SELECT c.id,
       c.queue_customer_id,
       c.stripe_customer_id,
       c.billing_email,
       c.billing_name,
       c.deleted_at IS NOT NULL AS deleted,
       c.created_at,
       s.stripe_subscription_id,
       coalesce(s.plan_tier, 'free') AS subscribed_tier,
       coalesce(s.status, 'none') AS status,
       s.current_period_end,
       coalesce(s.cancel_at_period_end, false) AS cancel_at_period_end,
       s.trial_end,
       s.grace_until,
       e.entitled,
       billing_usable_tier(e.entitled, s.plan_tier) AS plan_tier
  FROM billing_customer AS c
  LEFT JOIN LATERAL (
        -- OFFSET 0 keeps this a per-customer lookup: flattened into a join, the view's
        -- DISTINCT ON would rank every subscription there is on every read
        SELECT * FROM billing_current_subscription AS cs
         WHERE cs.stripe_customer_id = c.stripe_customer_id
        OFFSET 0
       ) AS s ON true
  CROSS JOIN LATERAL (
        SELECT c.deleted_at IS NULL AND coalesce(s.entitled, false) AS entitled
       ) AS e;

COMMIT;
