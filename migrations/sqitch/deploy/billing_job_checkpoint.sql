-- Deploy raxx_queue:billing_job_checkpoint to pg
BEGIN;

-- Operator jobs run on one-off dynos whose files vanish: progress lives here.
CREATE TABLE billing_job_checkpoint (
    job text NOT NULL,
    position text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT billing_job_checkpoint_pkey PRIMARY KEY (job)
);

COMMIT;
