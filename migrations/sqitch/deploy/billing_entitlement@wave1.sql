-- Deploy raxx_queue:billing_entitlement to pg
-- requires: billing_subscription
-- requires: billing_customer
BEGIN;

-- SPEC §4: entitled = status in (active, trialing) or (past_due and at < grace_until).
CREATE FUNCTION billing_entitled(p_status text, p_grace_until timestamptz, p_at timestamptz)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_status IN ('active', 'trialing')
        OR (p_status = 'past_due' AND p_grace_until IS NOT NULL AND p_at < p_grace_until)
$$;

CREATE FUNCTION billing_tier_rank(p_tier text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_tier WHEN 'pro_plus' THEN 2 WHEN 'pro' THEN 1 ELSE 0 END
$$;

-- Which of a customer's subscriptions is "current" when there are several.
CREATE FUNCTION billing_status_rank(p_status text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status
        WHEN 'active' THEN 0 WHEN 'trialing' THEN 1 WHEN 'past_due' THEN 2
        WHEN 'unpaid' THEN 3 WHEN 'paused' THEN 4 WHEN 'incomplete' THEN 5
        WHEN 'canceled' THEN 6 ELSE 7 END
$$;

CREATE VIEW billing_current_subscription AS
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

COMMIT;
