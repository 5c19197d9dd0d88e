-- Deploy raxx_queue:billing_mirror_refresh to pg
-- requires: billing_entitlement
-- requires: billing_subscription_mirror
-- requires: billing_action_log
BEGIN;

-- Every writer of a customer's billing rows takes this transaction-scoped advisory
-- lock first, so read-modify-write of one customer's state is serialised.
CREATE FUNCTION billing_customer_lock_key(p_stripe_customer_id text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('billing_customer:' || p_stripe_customer_id, 0)
$$;

-- Recompute a customer's mirror row from its current subscription. The version is
-- bumped (and the row becomes pending for the dispatcher) only when a pushed field
-- changes. feature_locked_at is set when the usable tier falls and cleared once the
-- customer is entitled at the tier it fell from.
CREATE FUNCTION billing_refresh_mirror(p_queue_customer_id text, p_at timestamptz DEFAULT now())
RETURNS TABLE (changed boolean, version bigint, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_customer billing_customer;
    v_sub record;
    v_old billing_subscription_mirror;
    v_tier text := 'free';
    v_status text := 'none';
    v_period_end timestamptz;
    v_grace timestamptz;
    v_entitled boolean := false;
    v_locked_at timestamptz;
    v_locked_from text;
    v_version bigint;
    v_after jsonb;
BEGIN
    SELECT * INTO v_customer FROM billing_customer AS c
     WHERE c.queue_customer_id = p_queue_customer_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF v_customer.stripe_customer_id IS NOT NULL THEN
        SELECT cs.plan_tier, cs.status, cs.current_period_end, cs.grace_until
          INTO v_sub
          FROM billing_current_subscription AS cs
         WHERE cs.stripe_customer_id = v_customer.stripe_customer_id;
        IF FOUND THEN
            v_status := v_sub.status;
            v_period_end := v_sub.current_period_end;
            v_grace := v_sub.grace_until;
            v_entitled := v_customer.deleted_at IS NULL
                          AND billing_entitled(v_sub.status, v_sub.grace_until, p_at);
            v_tier := CASE WHEN v_entitled THEN v_sub.plan_tier ELSE 'free' END;
        END IF;
    END IF;

    SELECT * INTO v_old FROM billing_subscription_mirror AS m
     WHERE m.queue_customer_id = p_queue_customer_id
       FOR UPDATE;

    IF NOT FOUND THEN
        INSERT INTO billing_subscription_mirror AS m
               (queue_customer_id, plan_tier, status, current_period_end, grace_until,
                entitled, version, updated_at)
        VALUES (p_queue_customer_id, v_tier, v_status, v_period_end, v_grace,
                v_entitled, 1, now())
        RETURNING m.version INTO v_version;
        v_after := jsonb_build_object('plan_tier', v_tier, 'status', v_status,
                                      'entitled', v_entitled, 'grace_until', v_grace,
                                      'current_period_end', v_period_end,
                                      'feature_locked_at', NULL);
        RETURN QUERY SELECT true, v_version, NULL::jsonb, v_after;
        RETURN;
    END IF;

    v_locked_at := v_old.feature_locked_at;
    v_locked_from := v_old.locked_from_tier;
    IF billing_tier_rank(v_tier) < billing_tier_rank(v_old.plan_tier) THEN
        IF v_locked_at IS NULL THEN
            v_locked_at := p_at;
            v_locked_from := v_old.plan_tier;
        ELSIF billing_tier_rank(v_old.plan_tier) > billing_tier_rank(v_locked_from) THEN
            v_locked_from := v_old.plan_tier;
        END IF;
    END IF;
    IF v_locked_at IS NOT NULL AND v_entitled
       AND billing_tier_rank(v_tier) >= billing_tier_rank(v_locked_from) THEN
        v_locked_at := NULL;
        v_locked_from := NULL;
    END IF;

    IF v_old.plan_tier = v_tier
       AND v_old.status = v_status
       AND v_old.current_period_end IS NOT DISTINCT FROM v_period_end
       AND v_old.grace_until IS NOT DISTINCT FROM v_grace
       AND v_old.entitled = v_entitled
       AND v_old.feature_locked_at IS NOT DISTINCT FROM v_locked_at THEN
        RETURN QUERY SELECT false, v_old.version, NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;

    UPDATE billing_subscription_mirror AS m
       SET plan_tier = v_tier,
           status = v_status,
           current_period_end = v_period_end,
           grace_until = v_grace,
           entitled = v_entitled,
           feature_locked_at = v_locked_at,
           locked_from_tier = v_locked_from,
           version = m.version + 1,
           updated_at = now(),
           next_push_at = now(),
           push_attempts = 0
     WHERE m.queue_customer_id = p_queue_customer_id
    RETURNING m.version INTO v_version;

    v_after := jsonb_build_object('plan_tier', v_tier, 'status', v_status,
                                  'entitled', v_entitled, 'grace_until', v_grace,
                                  'current_period_end', v_period_end,
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
