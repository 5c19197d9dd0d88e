-- Deploy raxx_queue:billing_apply_event to pg
-- requires: billing_mirror_refresh
-- requires: processed_stripe_events
-- requires: billing_invoice
BEGIN;

-- The webhook path makes one round trip per event: Python verifies the signature and
-- normalises the payload into p (see raxx_queue.webhooks.changes); this function does
-- the rest inside the caller's (single-statement) transaction.
--
-- p: {event_id, type, created (epoch s), api_version, livemode, source, request_id,
--     actor, payload (the raw event), family, stripe_customer_id, change {...},
--     grace_days, force}
-- A same-second conflict on a subscription raises SQLSTATE QU001 so the caller can
-- re-read the subscription from Stripe and call again with force = true.

CREATE FUNCTION billing_epoch(p jsonb, p_key text)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp((p ->> p_key)::double precision)
$$;

-- Link a Stripe customer to a platform customer. Returns the queue_customer_id now
-- linked to the Stripe customer (NULL when none); conflicts keep the existing link.
CREATE FUNCTION billing_link_event_customer(p_stripe_customer_id text, p_queue_customer_id text)
RETURNS TABLE (queue_customer_id text, conflict boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_by_stripe billing_customer;
    v_by_queue billing_customer;
BEGIN
    SELECT * INTO v_by_stripe FROM billing_customer AS c
     WHERE c.stripe_customer_id = p_stripe_customer_id FOR UPDATE;
    IF p_queue_customer_id IS NULL OR p_queue_customer_id !~ '^[A-Za-z0-9_-]{1,64}$' THEN
        RETURN QUERY SELECT v_by_stripe.queue_customer_id, false;
        RETURN;
    END IF;
    SELECT * INTO v_by_queue FROM billing_customer AS c
     WHERE c.queue_customer_id = p_queue_customer_id FOR UPDATE;

    IF v_by_stripe.id IS NULL AND v_by_queue.id IS NULL THEN
        INSERT INTO billing_customer (queue_customer_id, stripe_customer_id)
        VALUES (p_queue_customer_id, p_stripe_customer_id);
        RETURN QUERY SELECT p_queue_customer_id, false;
    ELSIF v_by_queue.id IS NULL THEN
        IF v_by_stripe.queue_customer_id IS NULL THEN
            UPDATE billing_customer SET queue_customer_id = p_queue_customer_id, updated_at = now()
             WHERE id = v_by_stripe.id;
            RETURN QUERY SELECT p_queue_customer_id, false;
        ELSE
            RETURN QUERY SELECT v_by_stripe.queue_customer_id, true;
        END IF;
    ELSIF v_by_stripe.id IS NULL THEN
        IF v_by_queue.stripe_customer_id IS NULL THEN
            UPDATE billing_customer SET stripe_customer_id = p_stripe_customer_id, updated_at = now()
             WHERE id = v_by_queue.id;
            RETURN QUERY SELECT p_queue_customer_id, false;
        ELSE
            RETURN QUERY SELECT NULL::text, true;
        END IF;
    ELSIF v_by_stripe.id = v_by_queue.id THEN
        RETURN QUERY SELECT p_queue_customer_id, false;
    ELSIF v_by_stripe.queue_customer_id IS NULL AND v_by_queue.stripe_customer_id IS NULL THEN
        -- a row made from Stripe events and a row made by the platform: merge them
        DELETE FROM billing_customer WHERE id = v_by_stripe.id;
        UPDATE billing_customer
           SET stripe_customer_id = p_stripe_customer_id,
               billing_email = coalesce(v_by_stripe.billing_email, billing_email),
               billing_name = coalesce(v_by_stripe.billing_name, billing_name),
               billing_address = coalesce(v_by_stripe.billing_address, billing_address),
               deleted_at = v_by_stripe.deleted_at,
               source_event_created_at = v_by_stripe.source_event_created_at,
               updated_at = now()
         WHERE id = v_by_queue.id;
        RETURN QUERY SELECT p_queue_customer_id, false;
    ELSE
        RETURN QUERY SELECT v_by_stripe.queue_customer_id, true;
    END IF;
END;
$$;

CREATE FUNCTION billing_apply_customer(p jsonb, p_created timestamptz, p_force boolean)
RETURNS TABLE (outcome text, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p -> 'change';
    v_id text := c ->> 'stripe_customer_id';
    v_old billing_customer;
    v_deleted boolean := coalesce((c ->> 'deleted')::boolean, false);
BEGIN
    SELECT * INTO v_old FROM billing_customer AS b WHERE b.stripe_customer_id = v_id FOR UPDATE;
    IF v_deleted THEN
        -- deletion is final and carries no PII; source_event_created_at guards PII only
        IF v_old.id IS NULL THEN
            INSERT INTO billing_customer (stripe_customer_id, deleted_at)
            VALUES (v_id, p_created);
        ELSE
            UPDATE billing_customer
               SET deleted_at = coalesce(deleted_at, p_created), updated_at = now()
             WHERE id = v_old.id;
        END IF;
        -- a deleted Stripe customer has no live subscriptions
        UPDATE billing_subscription
           SET status = 'canceled',
               ended_at = coalesce(ended_at, p_created),
               grace_until = NULL,
               source_event_created_at = greatest(source_event_created_at, p_created),
               updated_at = now()
         WHERE stripe_customer_id = v_id
           AND status NOT IN ('canceled', 'incomplete_expired');
    ELSE
        IF v_old.id IS NOT NULL AND NOT p_force
           AND v_old.source_event_created_at > p_created THEN
            RETURN QUERY SELECT 'stale', NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        IF v_old.id IS NULL THEN
            INSERT INTO billing_customer (stripe_customer_id, billing_email, billing_name,
                                          billing_address, source_event_created_at)
            VALUES (v_id, c ->> 'email', c ->> 'name', c -> 'address', p_created);
        ELSE
            UPDATE billing_customer
               SET billing_email = c ->> 'email',
                   billing_name = c ->> 'name',
                   billing_address = c -> 'address',
                   source_event_created_at = greatest(source_event_created_at, p_created),
                   updated_at = now()
             WHERE id = v_old.id;
        END IF;
    END IF;
    RETURN QUERY SELECT 'applied',
        jsonb_build_object('deleted', v_old.deleted_at IS NOT NULL, 'known', v_old.id IS NOT NULL),
        jsonb_build_object('deleted', v_deleted OR v_old.deleted_at IS NOT NULL);
END;
$$;

CREATE FUNCTION billing_apply_subscription(p jsonb, p_created timestamptz, p_force boolean)
RETURNS TABLE (outcome text, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p -> 'change';
    v_id text := c ->> 'stripe_subscription_id';
    v_old billing_subscription;
    v_status text := c ->> 'status';
    v_period_end timestamptz := billing_epoch(c, 'current_period_end');
    v_cancel boolean := coalesce((c ->> 'cancel_at_period_end')::boolean, false);
    v_trial_end timestamptz := billing_epoch(c, 'trial_end');
    v_canceled_at timestamptz := billing_epoch(c, 'canceled_at');
    v_ended_at timestamptz := billing_epoch(c, 'ended_at');
    v_grace timestamptz;
    v_failures integer := 0;
    v_deleted_at timestamptz;
BEGIN
    SELECT * INTO v_old FROM billing_subscription AS s
     WHERE s.stripe_subscription_id = v_id FOR UPDATE;
    IF v_old.stripe_subscription_id IS NOT NULL AND NOT p_force THEN
        IF v_old.source_event_created_at > p_created THEN
            RETURN QUERY SELECT 'stale', NULL::jsonb, NULL::jsonb;
            RETURN;
        END IF;
        IF v_old.source_event_created_at = p_created AND (
               v_old.status IS DISTINCT FROM v_status
            OR v_old.price_id IS DISTINCT FROM c ->> 'price_id'
            OR v_old.current_period_end IS DISTINCT FROM v_period_end
            OR v_old.cancel_at_period_end IS DISTINCT FROM v_cancel
            OR v_old.trial_end IS DISTINCT FROM v_trial_end
            OR v_old.ended_at IS DISTINCT FROM v_ended_at) THEN
            RAISE EXCEPTION 'same-second update of subscription %', v_id
                USING ERRCODE = 'QU001';
        END IF;
    END IF;

    -- the customer was deleted after this event: its subscriptions ended then
    SELECT b.deleted_at INTO v_deleted_at FROM billing_customer AS b
     WHERE b.stripe_customer_id = c ->> 'stripe_customer_id';
    IF v_deleted_at IS NOT NULL AND v_deleted_at >= p_created
       AND v_status NOT IN ('canceled', 'incomplete_expired') THEN
        v_status := 'canceled';
        v_ended_at := coalesce(v_ended_at, v_deleted_at);
    END IF;

    v_grace := v_old.grace_until;
    v_failures := coalesce(v_old.payment_failure_count, 0);
    IF v_status NOT IN ('active', 'trialing', 'past_due') THEN
        v_grace := NULL;
    ELSIF v_status IN ('active', 'trialing') THEN
        v_grace := NULL;
        v_failures := 0;
    ELSIF v_status = 'past_due' AND v_grace IS NULL AND v_failures = 0 THEN
        -- past_due can arrive before invoice.payment_failed: the grace window starts now
        v_grace := p_created + make_interval(days => (p ->> 'grace_days')::integer);
    END IF;

    INSERT INTO billing_subscription AS s
           (stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,
            current_period_start, current_period_end, cancel_at_period_end, trial_end,
            canceled_at, ended_at, grace_until, payment_failure_count, stripe_created_at,
            source_event_created_at)
    VALUES (v_id, c ->> 'stripe_customer_id', v_status, c ->> 'price_id', c ->> 'plan_tier',
            billing_epoch(c, 'current_period_start'), v_period_end, v_cancel, v_trial_end,
            v_canceled_at, v_ended_at, v_grace, v_failures, billing_epoch(c, 'stripe_created'),
            p_created)
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
           source_event_created_at = greatest(s.source_event_created_at, p_created),
           updated_at = now();

    RETURN QUERY SELECT 'applied',
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

CREATE FUNCTION billing_apply_invoice(p jsonb, p_created timestamptz, p_force boolean)
RETURNS TABLE (outcome text, before jsonb, after jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    c jsonb := p -> 'change';
    v_id text := c ->> 'stripe_invoice_id';
    v_effect text := c ->> 'effect';
    v_old billing_invoice;
    v_sub billing_subscription;
    v_status text := c ->> 'status';
    v_paid_at timestamptz := billing_epoch(c, 'paid_at');
    v_grace timestamptz;
    v_failures integer;
    v_sub_status text;
    v_sub_after jsonb;
BEGIN
    SELECT * INTO v_old FROM billing_invoice AS i WHERE i.stripe_invoice_id = v_id FOR UPDATE;
    IF v_old.stripe_invoice_id IS NOT NULL AND NOT p_force
       AND v_old.source_event_created_at > p_created THEN
        RETURN QUERY SELECT 'stale', NULL::jsonb, NULL::jsonb;
        RETURN;
    END IF;
    IF v_effect = 'paid' THEN
        v_status := 'paid';
        v_paid_at := coalesce(v_paid_at, p_created);
    END IF;

    INSERT INTO billing_invoice AS i
           (stripe_invoice_id, stripe_customer_id, stripe_subscription_id, status, number,
            currency, amount_due, amount_paid, amount_remaining, attempt_count, billing_reason,
            hosted_invoice_url, period_start, period_end, paid_at, stripe_created_at,
            source_event_created_at)
    VALUES (v_id, c ->> 'stripe_customer_id', c ->> 'stripe_subscription_id', v_status,
            c ->> 'number', c ->> 'currency', (c ->> 'amount_due')::bigint,
            (c ->> 'amount_paid')::bigint, (c ->> 'amount_remaining')::bigint,
            (c ->> 'attempt_count')::integer, c ->> 'billing_reason',
            c ->> 'hosted_invoice_url', billing_epoch(c, 'period_start'),
            billing_epoch(c, 'period_end'), v_paid_at,
            coalesce(billing_epoch(c, 'stripe_created'), p_created), p_created)
    ON CONFLICT ON CONSTRAINT billing_invoice_pkey DO UPDATE
       SET stripe_subscription_id = coalesce(EXCLUDED.stripe_subscription_id,
                                             i.stripe_subscription_id),
           status = EXCLUDED.status,
           number = coalesce(EXCLUDED.number, i.number),
           currency = EXCLUDED.currency,
           amount_due = EXCLUDED.amount_due,
           amount_paid = EXCLUDED.amount_paid,
           amount_remaining = EXCLUDED.amount_remaining,
           attempt_count = EXCLUDED.attempt_count,
           billing_reason = EXCLUDED.billing_reason,
           hosted_invoice_url = coalesce(EXCLUDED.hosted_invoice_url, i.hosted_invoice_url),
           period_start = EXCLUDED.period_start,
           period_end = EXCLUDED.period_end,
           paid_at = coalesce(EXCLUDED.paid_at, i.paid_at),
           source_event_created_at = greatest(i.source_event_created_at, p_created),
           updated_at = now();

    IF v_effect IN ('paid', 'failed') AND c ->> 'stripe_subscription_id' IS NOT NULL THEN
        SELECT * INTO v_sub FROM billing_subscription AS s
         WHERE s.stripe_subscription_id = c ->> 'stripe_subscription_id' FOR UPDATE;
    END IF;

    IF v_sub.stripe_subscription_id IS NOT NULL AND v_effect = 'paid' THEN
        -- a payment clears the failures before it, whatever order they arrive in
        IF v_sub.last_payment_failed_at IS NULL OR v_sub.last_payment_failed_at <= p_created THEN
            v_grace := NULL;
            v_failures := 0;
        ELSE
            v_grace := v_sub.grace_until;
            v_failures := v_sub.payment_failure_count;
        END IF;
        v_sub_status := v_sub.status;
        IF v_sub.status IN ('past_due', 'unpaid', 'incomplete')
           AND (v_sub.source_event_created_at IS NULL
                OR v_sub.source_event_created_at <= p_created OR p_force) THEN
            v_sub_status := 'active';
        END IF;
        UPDATE billing_subscription
           SET status = v_sub_status,
               grace_until = v_grace,
               payment_failure_count = v_failures,
               last_paid_at = greatest(last_paid_at, p_created),
               source_event_created_at = CASE WHEN v_sub_status <> v_sub.status
                   THEN greatest(source_event_created_at, p_created)
                   ELSE source_event_created_at END,
               updated_at = now()
         WHERE stripe_subscription_id = v_sub.stripe_subscription_id;
        v_sub_after := jsonb_build_object('status', v_sub_status, 'grace_until', v_grace);
    ELSIF v_sub.stripe_subscription_id IS NOT NULL AND v_effect = 'failed'
          -- a later payment, or a later event saying the subscription is healthy,
          -- already supersedes this failure
          AND (v_sub.last_paid_at IS NULL OR v_sub.last_paid_at < p_created)
          AND NOT (v_sub.status IN ('active', 'trialing')
                   AND v_sub.source_event_created_at > p_created) THEN
        -- Stripe's attempt_count says which failure this is, even out of order
        v_failures := greatest(v_sub.payment_failure_count + 1,
                               coalesce((c ->> 'attempt_count')::integer, 1));
        v_grace := least(coalesce(v_sub.grace_until, 'infinity'::timestamptz),
                         p_created + make_interval(days => (p ->> 'grace_days')::integer));
        IF v_failures >= 2 THEN
            -- a second failure inside the grace window ends entitlement at once
            v_grace := least(v_grace, p_created);
        END IF;
        v_sub_status := v_sub.status;
        IF v_sub.status IN ('active', 'trialing')
           AND (v_sub.source_event_created_at IS NULL
                OR v_sub.source_event_created_at <= p_created) THEN
            v_sub_status := 'past_due';
        END IF;
        IF v_sub_status NOT IN ('active', 'trialing', 'past_due') THEN
            v_grace := NULL;  -- unpaid or ended: no grace to give
        END IF;
        UPDATE billing_subscription
           SET status = v_sub_status,
               grace_until = v_grace,
               payment_failure_count = v_failures,
               last_payment_failed_at = greatest(last_payment_failed_at, p_created),
               source_event_created_at = CASE WHEN v_sub_status <> v_sub.status
                   THEN greatest(source_event_created_at, p_created)
                   ELSE source_event_created_at END,
               updated_at = now()
         WHERE stripe_subscription_id = v_sub.stripe_subscription_id;
        v_sub_after := jsonb_build_object('status', v_sub_status, 'grace_until', v_grace,
                                          'payment_failure_count', v_failures);
    END IF;

    RETURN QUERY SELECT 'applied',
        CASE WHEN v_old.stripe_invoice_id IS NULL THEN NULL ELSE
            jsonb_build_object('status', v_old.status, 'amount_paid', v_old.amount_paid) END,
        jsonb_build_object('status', v_status, 'amount_due', (c ->> 'amount_due')::bigint,
                           'amount_paid', (c ->> 'amount_paid')::bigint,
                           'subscription', v_sub_after);
END;
$$;

CREATE FUNCTION billing_apply_stripe_event(p jsonb)
RETURNS TABLE (outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_created timestamptz := billing_epoch(p, 'created');
    v_family text := p ->> 'family';
    v_customer text := p ->> 'stripe_customer_id';
    v_force boolean := coalesce((p ->> 'force')::boolean, false);
    v_outcome text := 'applied';
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
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_subscription(p, v_created, v_force) AS r;
        WHEN 'invoice' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_invoice(p, v_created, v_force) AS r;
        WHEN 'checkout', 'record' THEN
            v_after := p -> 'change';
        ELSE
            RAISE EXCEPTION 'unknown event family %', v_family USING ERRCODE = 'QU003';
    END CASE;

    -- linking is additive, so even a stale event may link its customer
    IF v_customer IS NOT NULL THEN
        SELECT l.queue_customer_id, l.conflict INTO v_queue_id, v_conflict
          FROM billing_link_event_customer(v_customer, p -> 'change' ->> 'queue_customer_id') AS l;
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
