-- Deploy raxx_queue:billing_event_catchup to pg
-- requires: processed_stripe_events
-- requires: billing_action_log
-- requires: billing_job_checkpoint
BEGIN;

-- Events the catch-up worker applies are recorded with source 'catchup' and audited
-- as actor 'catchup'; snapshot events fetched for a thin notification, and the thin
-- notifications themselves, with source 'thin'.
ALTER TABLE processed_stripe_events DROP CONSTRAINT processed_stripe_events_source_check;
ALTER TABLE processed_stripe_events ADD CONSTRAINT processed_stripe_events_source_check
    CHECK (source IN ('webhook', 'replay', 'reconcile', 'catchup', 'thin'));

ALTER TABLE billing_action_log DROP CONSTRAINT billing_action_log_actor_check;
ALTER TABLE billing_action_log ADD CONSTRAINT billing_action_log_actor_check
    CHECK (actor IN ('stripe', 'raptor', 'console', 'reconcile', 'system', 'catchup'));

-- One holder at a time of a background job that runs in every web process. A lease
-- row, not a session advisory lock: it must hold through PgBouncer in transaction
-- mode, and no transaction stays open across the Stripe calls of a run. The holder
-- is a token unique to one run, so a run whose lease lapsed and was taken over can
-- neither renew it nor write the job's checkpoint.
CREATE TABLE billing_job_lease (
    job text NOT NULL,
    holder text,
    lease_until timestamptz NOT NULL DEFAULT '-infinity',
    next_run_at timestamptz NOT NULL DEFAULT '-infinity',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_job_lease_pkey PRIMARY KEY (job)
);

-- What each run of such a job did, for operators and for /health.
CREATE TABLE billing_job_run (
    id bigint GENERATED ALWAYS AS IDENTITY,
    job text NOT NULL,
    holder text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome text,
    report jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT billing_job_run_pkey PRIMARY KEY (id),
    CONSTRAINT billing_job_run_finished_check CHECK ((finished_at IS NULL) = (outcome IS NULL))
);

CREATE INDEX billing_job_run_job_idx ON billing_job_run (job, id);

COMMIT;
