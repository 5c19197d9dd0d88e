-- Deploy raxx_queue:billing_mirror_refresh to pg
-- requires: billing_mirror_refresh@wave1
-- requires: billing_entitlement
BEGIN;

-- The per-customer lock key is unchanged since @wave1 (billing_customer_lock_key):
-- every writer of a Stripe customer's rows takes pg_advisory_xact_lock on it first.

-- Recompute a customer's mirror row from billing_customer_state (its current
-- subscription, entitlement and usable tier). The version is bumped, and the row
-- becomes pending for the dispatcher, only when a pushed field changes.
-- feature_locked_at is set when the usable tier falls and cleared once the customer is
-- entitled at the tier it fell from.
DROP FUNCTION billing_refresh_mirror(text, timestamptz);
CREATE FUNCTION billing_refresh_mirror(p_queue_customer_id text)
RETURNS TABLE (changed boolean, version bigint, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_state billing_customer_state;
    v_old billing_subscription_mirror;
    v_locked_at timestamptz;
    v_locked_from text;
    v_version bigint;
    v_after jsonb;
BEGIN
    SELECT * INTO v_state FROM billing_customer_state AS cs
     WHERE cs.queue_customer_id = p_queue_customer_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    SELECT * INTO v_old FROM billing_subscription_mirror AS m
     WHERE m.queue_customer_id = p_queue_customer_id
       FOR UPDATE;

    IF NOT FOUND THEN
        INSERT INTO billing_subscription_mirror AS m
               (queue_customer_id, plan_tier, status, current_period_end, grace_until,
                entitled, version, updated_at)
        VALUES (p_queue_customer_id, v_state.plan_tier, v_state.status,
                v_state.current_period_end, v_state.grace_until, v_state.entitled, 1, now())
        RETURNING m.version INTO v_version;
        v_after := jsonb_build_object('plan_tier', v_state.plan_tier, 'status', v_state.status,
                                      'entitled', v_state.entitled,
                                      'grace_until', v_state.grace_until,
                                      'current_period_end', v_state.current_period_end,
                                      'feature_locked_at', NULL);
        RETURN QUERY SELECT true, v_version, NULL::jsonb, v_after;
        RETURN;
    END IF;

    -- the downgrade lock
    v_locked_at := v_old.feature_locked_at;
    v_locked_from := v_old.locked_from_tier;
    IF billing_tier_rank(v_state.plan_tier) < billing_tier_rank(v_old.plan_tier) THEN
        IF v_locked_at IS NULL THEN
            v_locked_at := now();
            v_locked_from := v_old.plan_tier;
        ELSIF billing_tier_rank(v_old.plan_tier) > billing_tier_rank(v_locked_from) THEN
            v_locked_from := v_old.plan_tier;
        END IF;
    END IF;
    IF v_locked_at IS NOT NULL AND v_state.entitled
       AND billing_tier_rank(v_state.plan_tier) >= billing_tier_rank(v_locked_from) THEN
        v_locked_at := NULL;
        v_locked_from := NULL;
    END IF;

    IF v_old.plan_tier = v_state.plan_tier
       AND v_old.status = v_state.status
       AND v_old.current_period_end IS NOT DISTINCT FROM v_state.current_period_end
       AND v_old.grace_until IS NOT DISTINCT FROM v_state.grace_until
       AND v_old.entitled = v_state.entitled
       AND v_old.feature_locked_at IS NOT DISTINCT FROM v_locked_at THEN
        RETURN QUERY SELECT false, v_old.version, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;

    UPDATE billing_subscription_mirror AS m
       SET plan_tier = v_state.plan_tier,
           status = v_state.status,
           current_period_end = v_state.current_period_end,
           grace_until = v_state.grace_until,
           entitled = v_state.entitled,
           feature_locked_at = v_locked_at,
           locked_from_tier = v_locked_from,
           version = m.version + 1,
           updated_at = now(),
           next_push_at = now(),
           push_attempts = 0
     WHERE m.queue_customer_id = p_queue_customer_id
    RETURNING m.version INTO v_version;

    v_after := jsonb_build_object('plan_tier', v_state.plan_tier, 'status', v_state.status,
                                  'entitled', v_state.entitled,
                                  'grace_until', v_state.grace_until,
                                  'current_period_end', v_state.current_period_end,
                                  'feature_locked_at', v_locked_at);
    RETURN QUERY SELECT true, v_version,
        jsonb_build_object('plan_tier', v_old.plan_tier, 'status', v_old.status,
                           'entitled', v_old.entitled, 'grace_until', v_old.grace_until,
                           'current_period_end', v_old.current_period_end,
                           'feature_locked_at', v_old.feature_locked_at),
        v_after;
END;
$$;

COMMIT;
