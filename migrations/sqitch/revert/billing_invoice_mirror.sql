-- Revert raxx_queue:billing_invoice_mirror from pg
BEGIN;

-- billing_apply_stripe_event of billing_access_policy
CREATE OR REPLACE FUNCTION billing_apply_stripe_event(p jsonb)
RETURNS TABLE (outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
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
    v_access_change jsonb;
BEGIN
    -- a dispute names its payment, not its customer: the invoices told which it is
    IF v_family = 'dispute' AND v_customer IS NULL THEN
        SELECT coalesce(r.stripe_customer_id, i.stripe_customer_id) INTO v_customer
          FROM billing_payment_ref AS r
          LEFT JOIN billing_invoice AS i ON i.stripe_invoice_id = r.stripe_invoice_id
         WHERE r.payment_ref IN (p -> 'change' ->> 'charge_id',
                                 p -> 'change' ->> 'payment_intent_id')
         ORDER BY 1 NULLS LAST
         LIMIT 1;
    ELSIF v_family = 'payment' AND v_customer IS NULL THEN
        SELECT i.stripe_customer_id INTO v_customer FROM billing_invoice AS i
         WHERE i.stripe_invoice_id = p -> 'change' ->> 'stripe_invoice_id';
    END IF;

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
        RETURN QUERY SELECT 'duplicate', NULL::text, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    IF v_family = 'ignored' THEN
        RETURN QUERY SELECT 'ignored', NULL::text, false, NULL::bigint, NULL::jsonb;
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
            INSERT INTO billing_payment_ref (payment_ref, stripe_customer_id, stripe_invoice_id)
            SELECT ref, v_customer, p ->> 'object_id'
              FROM jsonb_array_elements_text(coalesce(p -> 'change' -> 'payment_refs',
                                                      '[]'::jsonb)) AS ref
            ON CONFLICT ON CONSTRAINT billing_payment_ref_pkey DO NOTHING;
        WHEN 'payment' THEN
            INSERT INTO billing_payment_ref AS r
                   (payment_ref, stripe_customer_id, stripe_invoice_id)
            SELECT ref, v_customer, p -> 'change' ->> 'stripe_invoice_id'
              FROM jsonb_array_elements_text(coalesce(p -> 'change' -> 'payment_refs',
                                                      '[]'::jsonb)) AS ref
            ON CONFLICT ON CONSTRAINT billing_payment_ref_pkey DO UPDATE
               SET stripe_customer_id = coalesce(r.stripe_customer_id,
                                                 EXCLUDED.stripe_customer_id),
                   stripe_invoice_id = coalesce(r.stripe_invoice_id, EXCLUDED.stripe_invoice_id);
            v_after := jsonb_build_object(
                'payments', jsonb_array_length(coalesce(p -> 'change' -> 'payment_refs',
                                                        '[]'::jsonb)),
                'customer_known', v_customer IS NOT NULL);
        WHEN 'dispute' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_dispute(p, v_customer, v_created, v_force) AS r;
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
        RETURN QUERY SELECT 'stale', v_queue_id, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    IF v_queue_id IS NOT NULL THEN
        -- a change of access goes in this event's audit row, with the rule that decided it
        SELECT m.changed, m.version, m.before, m.after, m.access_change
          INTO v_mirror_changed, v_mirror_version, v_mirror_before, v_mirror_after,
               v_access_change
          FROM billing_refresh_mirror(v_queue_id, NULL, NULL, NULL) AS m;
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
                'access', v_access_change,
                'mirror', CASE WHEN v_mirror_changed THEN
                    jsonb_build_object('version', v_mirror_version,
                                       'before', v_mirror_before, 'after', v_mirror_after)
                    END)));

    RETURN QUERY SELECT 'applied', v_queue_id, v_mirror_changed, v_mirror_version,
        v_access_change;
END;
$$;

COMMIT;
