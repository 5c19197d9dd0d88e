-- Revert raxx_queue:billing_erasure_raw_search from pg
BEGIN;

-- billing_erase_customer of billing_event_raw_copy
CREATE OR REPLACE FUNCTION billing_erase_customer(p_queue_customer_id text, p_locked_stripe_id text)
RETURNS TABLE (found boolean, stripe_customer_id text, erased_at timestamptz,
               already_erased boolean, erased jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_row billing_customer;
    v_stripe text;
    v_email text;
    v_customer_counts jsonb := '{}'::jsonb;
    v_payload_counts jsonb := '{}'::jsonb;
    v_events integer := 0;
    v_invoices integer := 0;
    v_refs text[];
    v_event_ids text[];
    v_was_erased boolean;
    r record;
    w record;
BEGIN
    SELECT * INTO v_row FROM billing_customer AS c
     WHERE c.queue_customer_id = p_queue_customer_id FOR UPDATE;
    IF v_row.id IS NULL THEN
        RETURN QUERY SELECT false, NULL::text, NULL::timestamptz, false, NULL::jsonb;
        RETURN;
    END IF;
    v_stripe := v_row.stripe_customer_id;
    IF v_stripe IS DISTINCT FROM p_locked_stripe_id THEN
        RAISE EXCEPTION 'the customer''s Stripe link changed' USING ERRCODE = 'QU020';
    END IF;
    v_email := lower(nullif(v_row.billing_email, ''));
    v_was_erased := v_row.erased_at IS NOT NULL;

    IF v_row.billing_email IS NOT NULL AND v_row.billing_email <> '' THEN
        v_customer_counts := v_customer_counts || '{"emails": 1}';
    END IF;
    IF v_row.billing_name IS NOT NULL AND v_row.billing_name <> '' THEN
        v_customer_counts := v_customer_counts || '{"names": 1}';
    END IF;
    IF billing_json_has_value(v_row.billing_address) THEN
        v_customer_counts := v_customer_counts || '{"addresses": 1}';
    END IF;
    UPDATE billing_customer AS c
       SET erased_at = coalesce(c.erased_at, now()), updated_at = now()
     WHERE c.id = v_row.id
    RETURNING * INTO v_row;

    -- the hosted invoice page shows the name and address Stripe holds
    UPDATE billing_invoice AS i SET hosted_invoice_url = NULL, updated_at = now()
     WHERE i.stripe_customer_id = v_stripe AND i.hosted_invoice_url IS NOT NULL;
    GET DIAGNOSTICS v_invoices = ROW_COUNT;

    -- the customer's events: by the Stripe customer or the queue customer they
    -- name, or carrying its e-mail (in any case); and the ids of their objects, with
    -- those of events erased before
    SELECT coalesce(array_agg(e.event_id), '{}'),
           coalesce(array_agg(DISTINCT e.payload #>> '{data,object,id}')
                    FILTER (WHERE e.payload #>> '{data,object,id}' IS NOT NULL), '{}')
      INTO v_event_ids, v_refs
      FROM processed_stripe_events AS e
     WHERE e.stripe_customer_id = v_stripe
        OR billing_event_customer(e.payload) = v_stripe
        OR p_queue_customer_id IN (e.payload #>> '{data,object,metadata,queue_customer_id}',
                                   e.payload #>> '{data,object,client_reference_id}')
        OR (v_email IS NOT NULL
            AND strpos(lower(billing_event_payload(e.payload, e.payload_raw)::text), v_email) > 0);
    v_refs := v_refs || ARRAY(SELECT x.ref FROM billing_erased_reference AS x
                               WHERE x.queue_customer_id = p_queue_customer_id);
    -- events about those objects that do not name the customer (a dispute, a refund)
    SELECT v_event_ids || coalesce(array_agg(e.event_id), '{}'),
           v_refs || coalesce(array_agg(e.payload #>> '{data,object,id}')
                              FILTER (WHERE e.payload #>> '{data,object,id}' IS NOT NULL),
                              '{}')
      INTO v_event_ids, v_refs
      FROM processed_stripe_events AS e
     WHERE billing_event_refs(e.payload) && v_refs
       AND NOT e.event_id = ANY (v_event_ids);
    INSERT INTO billing_erased_reference (ref, queue_customer_id)
    SELECT DISTINCT ref, p_queue_customer_id FROM unnest(v_refs) AS ref
    ON CONFLICT DO NOTHING;

    FOR r IN
        SELECT e.event_id, billing_event_payload(e.payload, e.payload_raw) AS payload
          FROM processed_stripe_events AS e
         WHERE e.event_id = ANY (v_event_ids)
         ORDER BY e.event_id
         FOR UPDATE
    LOOP
        SELECT * INTO w FROM billing_redact_walk(r.payload, '{}'::jsonb);
        IF w.redacted IS DISTINCT FROM r.payload THEN
            UPDATE processed_stripe_events AS e
               SET payload = w.redacted,
                   payload_raw = NULL,
                   stripe_customer_id = coalesce(e.stripe_customer_id, v_stripe)
             WHERE e.event_id = r.event_id;
            v_events := v_events + 1;
            SELECT coalesce(jsonb_object_agg(key, total), '{}') INTO v_payload_counts
              FROM (SELECT key, sum(value::int) AS total
                      FROM (SELECT * FROM jsonb_each_text(v_payload_counts)
                            UNION ALL SELECT * FROM jsonb_each_text(w.counts)) AS both_counts
                     GROUP BY key) AS summed;
        END IF;
    END LOOP;

    RETURN QUERY SELECT true, v_stripe, v_row.erased_at, v_was_erased,
        jsonb_build_object(
            'customer', v_customer_counts,
            'event_payloads', v_events,
            'event_fields', v_payload_counts,
            'invoice_links', v_invoices);
END;
$$;

DROP FUNCTION billing_event_mentions(jsonb, text, text);

COMMIT;
