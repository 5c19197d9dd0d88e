-- Verify raxx_queue:billing_job_checkpoint on pg
SELECT job, position, updated_at FROM billing_job_checkpoint WHERE false;
