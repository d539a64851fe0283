CREATE TABLE "callback_deliveries" (
	"job_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"at" bigint NOT NULL,
	"duration_ms" double precision NOT NULL,
	"http_status" integer,
	"error" text,
	"node" text NOT NULL,
	CONSTRAINT "callback_deliveries_job_id_attempt_pk" PRIMARY KEY("job_id","attempt")
);
--> statement-breakpoint
CREATE TABLE "job_usage" (
	"function_name" text PRIMARY KEY NOT NULL,
	"jobs" integer DEFAULT 0 NOT NULL,
	"bytes" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "jobs" (
	"id" text PRIMARY KEY NOT NULL,
	"function_name" text NOT NULL,
	"version" integer,
	"trigger" text NOT NULL,
	"state" text NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"max_attempts" integer NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"run_at" bigint NOT NULL,
	"lease_node" text,
	"lease_until" bigint,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"url" text NOT NULL,
	"headers" jsonb NOT NULL,
	"body" "bytea",
	"request_bytes" integer NOT NULL,
	"idempotency_key" text,
	"callback_url" text,
	"scheduled_at" bigint,
	"schedule_key" text,
	"redrive_of" text,
	"last_invocation_id" text,
	"last_status" text,
	"last_error" text,
	"result_http_status" integer,
	"result_headers" jsonb,
	"result_body" "bytea",
	"result_truncated" boolean DEFAULT false NOT NULL,
	"duration_ms" double precision,
	"finished_at" bigint,
	"callback_state" text,
	"callback_attempts" integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "schedule_ticks" (
	"function_name" text NOT NULL,
	"schedule_key" text NOT NULL,
	"tick_at" bigint NOT NULL,
	"outcome" text NOT NULL,
	"job_id" text,
	"node" text NOT NULL,
	"claimed_at" bigint NOT NULL,
	CONSTRAINT "schedule_ticks_function_name_schedule_key_tick_at_pk" PRIMARY KEY("function_name","schedule_key","tick_at")
);
--> statement-breakpoint
ALTER TABLE "function_versions" ADD COLUMN "retries" integer DEFAULT 2 NOT NULL;--> statement-breakpoint
ALTER TABLE "function_versions" ADD COLUMN "max_event_age_s" integer DEFAULT 21600 NOT NULL;--> statement-breakpoint
ALTER TABLE "function_versions" ADD COLUMN "schedules" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "callback_deliveries" ADD CONSTRAINT "callback_deliveries_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "jobs_state_run_at" ON "jobs" USING btree ("state","run_at");--> statement-breakpoint
CREATE INDEX "jobs_state_created" ON "jobs" USING btree ("state","created_at");--> statement-breakpoint
CREATE INDEX "jobs_function_state" ON "jobs" USING btree ("function_name","state");--> statement-breakpoint
CREATE INDEX "jobs_callback_due" ON "jobs" USING btree ("callback_state","run_at");--> statement-breakpoint
CREATE UNIQUE INDEX "jobs_idempotency" ON "jobs" USING btree ("function_name","idempotency_key");--> statement-breakpoint
CREATE INDEX "jobs_schedule" ON "jobs" USING btree ("function_name","schedule_key","scheduled_at");--> statement-breakpoint
CREATE INDEX "invocations_job" ON "invocations" USING btree ("job_id");