-- Revert raxx_queue:billing_access_policy from pg: the functions and views as
-- billing_apply_event, billing_entitlement and billing_mirror_refresh left them
BEGIN;
SET LOCAL client_min_messages = error;

DROP FUNCTION billing_refresh_mirror(text);
DROP FUNCTION billing_refresh_mirror(text, text, text, text);
DROP FUNCTION billing_apply_dispute(jsonb, text, timestamptz, boolean);
DROP FUNCTION billing_apply_stripe_event(jsonb);
DROP VIEW billing_customer_state;
DROP VIEW billing_current_subscription;
DROP FUNCTION billing_access(text, timestamptz, timestamptz, boolean, boolean, timestamptz);
DROP FUNCTION billing_access_entitles(text);
DROP TABLE billing_access_rule;
DROP FUNCTION billing_dispute_is_open(text);
DROP TABLE billing_dispute;
DROP TABLE billing_payment_ref;
ALTER TABLE billing_subscription_mirror
    DROP COLUMN access,
    DROP COLUMN access_reason,
    DROP COLUMN access_rule,
    DROP COLUMN access_changed_at,
    DROP COLUMN access_due_at;
ALTER TABLE billing_subscription
    DROP COLUMN pause_behavior,
    DROP COLUMN pause_resumes_at,
    DROP COLUMN pause_paid_through;

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

CREATE OR REPLACE FUNCTION billing_store_subscription(p_change jsonb, p_at timestamptz,
                                           p_on_tie text, p_grace_days integer)
RETURNS TABLE (stored text, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p_change;
    v_id text := c ->> 'stripe_subscription_id';
    v_old billing_subscription;
    v_status text := c ->> 'status';
    v_period_end timestamptz := billing_epoch(c, 'current_period_end');
    v_cancel boolean := coalesce((c ->> 'cancel_at_period_end')::boolean, false);
    v_trial_end timestamptz := billing_epoch(c, 'trial_end');
    v_canceled_at timestamptz := billing_epoch(c, 'canceled_at');
    v_ended_at timestamptz := billing_epoch(c, 'ended_at');
    v_grace timestamptz;
    v_failures integer;
    v_deleted_at timestamptz;
BEGIN
    IF p_on_tie NOT IN ('raise', 'keep', 'overwrite') THEN
        RAISE EXCEPTION 'unknown tie rule %', p_on_tie USING ERRCODE = 'QU003';
    END IF;
    SELECT * INTO v_old FROM billing_subscription AS s
     WHERE s.stripe_subscription_id = v_id FOR UPDATE;
    IF billing_is_stale(v_old.source_event_created_at, p_at, p_on_tie = 'overwrite') THEN
        RETURN QUERY SELECT 'stale', NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF v_old.source_event_created_at = p_at AND p_on_tie <> 'overwrite' AND (
           v_old.status IS DISTINCT FROM v_status
        OR v_old.price_id IS DISTINCT FROM c ->> 'price_id'
        OR v_old.current_period_end IS DISTINCT FROM v_period_end
        OR v_old.cancel_at_period_end IS DISTINCT FROM v_cancel
        OR v_old.trial_end IS DISTINCT FROM v_trial_end
        OR v_old.ended_at IS DISTINCT FROM v_ended_at) THEN
        IF p_on_tie = 'keep' THEN
            RETURN QUERY SELECT 'kept', NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        RAISE EXCEPTION 'same-second update of subscription %', v_id USING ERRCODE = 'QU001';
    END IF;
    IF p_on_tie = 'keep' AND v_old.source_event_created_at = p_at THEN
        RETURN QUERY SELECT 'kept', NULL::jsonb, NULL::jsonb;  -- nothing it does not know
        RETURN;
    END IF;

    -- the customer was deleted after this state: its subscriptions ended then
    SELECT b.deleted_at INTO v_deleted_at FROM billing_customer AS b
     WHERE b.stripe_customer_id = c ->> 'stripe_customer_id';
    IF v_deleted_at IS NOT NULL AND v_deleted_at >= p_at
       AND v_status NOT IN ('canceled', 'incomplete_expired') THEN
        v_status := 'canceled';
        v_ended_at := coalesce(v_ended_at, v_deleted_at);
    END IF;

    SELECT g.grace_until, g.failures INTO v_grace, v_failures
      FROM billing_grace_on_status(v_status, v_old.grace_until,
                                   coalesce(v_old.payment_failure_count, 0), p_at,
                                   p_grace_days) AS g;

    INSERT INTO billing_subscription AS s
           (stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,
            current_period_start, current_period_end, cancel_at_period_end, trial_end,
            canceled_at, ended_at, grace_until, payment_failure_count, stripe_created_at,
            source_event_created_at)
    VALUES (v_id, c ->> 'stripe_customer_id', v_status, c ->> 'price_id', c ->> 'plan_tier',
            billing_epoch(c, 'current_period_start'), v_period_end, v_cancel, v_trial_end,
            v_canceled_at, v_ended_at, v_grace, v_failures, billing_epoch(c, 'stripe_created'),
            p_at)
    ON CONFLICT ON CONSTRAINT billing_subscription_pkey DO UPDATE
       SET stripe_customer_id = EXCLUDED.stripe_customer_id,
           status = EXCLUDED.status,
           price_id = EXCLUDED.price_id,
           plan_tier = EXCLUDED.plan_tier,
           current_period_start = EXCLUDED.current_period_start,
           current_period_end = EXCLUDED.current_period_end,
           cancel_at_period_end = EXCLUDED.cancel_at_period_end,
           trial_end = EXCLUDED.trial_end,
           canceled_at = EXCLUDED.canceled_at,
           ended_at = EXCLUDED.ended_at,
           grace_until = EXCLUDED.grace_until,
           payment_failure_count = EXCLUDED.payment_failure_count,
           stripe_created_at = coalesce(EXCLUDED.stripe_created_at, s.stripe_created_at),
           source_event_created_at = greatest(s.source_event_created_at, p_at),
           updated_at = now();

    RETURN QUERY SELECT
        CASE WHEN v_old.stripe_subscription_id IS NULL THEN 'inserted' ELSE 'updated' END,
        CASE WHEN v_old.stripe_subscription_id IS NULL THEN NULL ELSE
            jsonb_build_object('status', v_old.status, 'plan_tier', v_old.plan_tier,
                               'price_id', v_old.price_id,
                               'current_period_end', v_old.current_period_end,
                               'cancel_at_period_end', v_old.cancel_at_period_end,
                               'grace_until', v_old.grace_until) END,
        jsonb_build_object('status', v_status, 'plan_tier', c ->> 'plan_tier',
                           'price_id', c ->> 'price_id', 'current_period_end', v_period_end,
                           'cancel_at_period_end', v_cancel, 'grace_until', v_grace);
END;
$$;

CREATE OR REPLACE FUNCTION billing_apply_stripe_event(p jsonb)
RETURNS TABLE (outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_created timestamptz := billing_epoch(p, 'created');
    v_family text := p ->> 'family';
    v_customer text := p ->> 'stripe_customer_id';
    v_force boolean := coalesce((p ->> 'force')::boolean, false);
    v_outcome text := 'applied';
    v_stored text;
    v_before jsonb;
    v_after jsonb;
    v_queue_id text;
    v_conflict boolean := false;
    v_mirror_changed boolean := false;
    v_mirror_version bigint;
    v_mirror_before jsonb;
    v_mirror_after jsonb;
BEGIN
    INSERT INTO processed_stripe_events AS e
           (event_id, type, outcome, stripe_customer_id, event_created_at, api_version,
            livemode, source, request_id, payload)
    VALUES (p ->> 'event_id', p ->> 'type',
            CASE WHEN v_family IN ('ignored') THEN 'ignored' ELSE 'applied' END,
            v_customer, v_created, p ->> 'api_version',
            coalesce((p ->> 'livemode')::boolean, false), coalesce(p ->> 'source', 'webhook'),
            p ->> 'request_id', p -> 'payload')
    ON CONFLICT ON CONSTRAINT processed_stripe_events_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'duplicate', NULL::text, false, NULL::bigint;
        RETURN;
    END IF;
    IF v_family = 'ignored' THEN
        RETURN QUERY SELECT 'ignored', NULL::text, false, NULL::bigint;
        RETURN;
    END IF;

    IF v_customer IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(billing_customer_lock_key(v_customer));
    END IF;

    CASE v_family
        WHEN 'customer' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_customer(p, v_created, v_force) AS r;
        WHEN 'subscription' THEN
            SELECT r.stored, r.before, r.after INTO v_stored, v_before, v_after
              FROM billing_store_subscription(
                       p -> 'change', v_created,
                       CASE WHEN v_force THEN 'overwrite' ELSE 'raise' END,
                       (p ->> 'grace_days')::integer) AS r;
            v_outcome := CASE WHEN v_stored = 'stale' THEN 'stale' ELSE 'applied' END;
        WHEN 'invoice' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_invoice(p, v_created, v_force) AS r;
        WHEN 'checkout' THEN
            v_after := (p -> 'change') - 'subscription'::text;
            -- a session carrying its subscription expanded: stored like any other
            IF jsonb_typeof(p -> 'change' -> 'subscription') = 'object' THEN
                SELECT r.stored INTO v_stored
                  FROM billing_store_subscription(
                           p -> 'change' -> 'subscription', v_created, 'keep',
                           (p ->> 'grace_days')::integer) AS r;
                v_after := v_after || jsonb_build_object('subscription_stored', v_stored);
            END IF;
        WHEN 'record' THEN
            v_after := p -> 'change';
        ELSE
            RAISE EXCEPTION 'unknown event family %', v_family USING ERRCODE = 'QU003';
    END CASE;

    -- linking is additive, so even a stale event may link its customer
    IF v_customer IS NOT NULL THEN
        SELECT l.queue_customer_id, l.conflict INTO v_queue_id, v_conflict
          FROM billing_link_customer(p -> 'change' ->> 'queue_customer_id', v_customer,
                                     NULL, NULL, 'event') AS l;
    END IF;

    IF v_outcome = 'stale' THEN
        UPDATE processed_stripe_events SET outcome = 'stale' WHERE event_id = p ->> 'event_id';
        RETURN QUERY SELECT 'stale', v_queue_id, false, NULL::bigint;
        RETURN;
    END IF;

    IF v_queue_id IS NOT NULL THEN
        SELECT m.changed, m.version, m.before, m.after
          INTO v_mirror_changed, v_mirror_version, v_mirror_before, v_mirror_after
          FROM billing_refresh_mirror(v_queue_id) AS m;
        v_mirror_changed := coalesce(v_mirror_changed, false);
    END IF;

    INSERT INTO billing_action_log
           (actor, action, queue_customer_id, stripe_object_id, event_id, request_id, summary)
    VALUES (coalesce(p ->> 'actor', 'stripe'), coalesce(p ->> 'action', 'stripe.' || (p ->> 'type')),
            v_queue_id,
            p ->> 'object_id', p ->> 'event_id', p ->> 'request_id',
            jsonb_strip_nulls(jsonb_build_object(
                'before', v_before, 'after', v_after,
                'link_conflict', CASE WHEN v_conflict THEN true END,
                'mirror', CASE WHEN v_mirror_changed THEN
                    jsonb_build_object('version', v_mirror_version,
                                       'before', v_mirror_before, 'after', v_mirror_after)
                    END)));

    RETURN QUERY SELECT 'applied', v_queue_id, v_mirror_changed, v_mirror_version;
END;
$$;

COMMIT;
