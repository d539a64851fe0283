CREATE TABLE `callback_deliveries` (
	`job_id` text NOT NULL,
	`attempt` integer NOT NULL,
	`at` integer NOT NULL,
	`duration_ms` real NOT NULL,
	`http_status` integer,
	`error` text,
	`node` text NOT NULL,
	PRIMARY KEY(`job_id`, `attempt`),
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `job_usage` (
	`function_name` text PRIMARY KEY NOT NULL,
	`jobs` integer DEFAULT 0 NOT NULL,
	`bytes` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`function_name` text NOT NULL,
	`version` integer,
	`trigger` text NOT NULL,
	`state` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`max_attempts` integer NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`run_at` integer NOT NULL,
	`lease_node` text,
	`lease_until` integer,
	`method` text NOT NULL,
	`path` text NOT NULL,
	`url` text NOT NULL,
	`headers` text NOT NULL,
	`body` blob,
	`request_bytes` integer NOT NULL,
	`idempotency_key` text,
	`callback_url` text,
	`scheduled_at` integer,
	`schedule_key` text,
	`redrive_of` text,
	`last_invocation_id` text,
	`last_status` text,
	`last_error` text,
	`result_http_status` integer,
	`result_headers` text,
	`result_body` blob,
	`result_truncated` integer DEFAULT false NOT NULL,
	`duration_ms` real,
	`finished_at` integer,
	`callback_state` text,
	`callback_attempts` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX `jobs_state_run_at` ON `jobs` (`state`,`run_at`);--> statement-breakpoint
CREATE INDEX `jobs_state_created` ON `jobs` (`state`,`created_at`);--> statement-breakpoint
CREATE INDEX `jobs_function_state` ON `jobs` (`function_name`,`state`);--> statement-breakpoint
CREATE INDEX `jobs_callback_due` ON `jobs` (`callback_state`,`run_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency` ON `jobs` (`function_name`,`idempotency_key`);--> statement-breakpoint
CREATE INDEX `jobs_schedule` ON `jobs` (`function_name`,`schedule_key`,`scheduled_at`);--> statement-breakpoint
CREATE TABLE `schedule_ticks` (
	`function_name` text NOT NULL,
	`schedule_key` text NOT NULL,
	`tick_at` integer NOT NULL,
	`outcome` text NOT NULL,
	`job_id` text,
	`node` text NOT NULL,
	`claimed_at` integer NOT NULL,
	PRIMARY KEY(`function_name`, `schedule_key`, `tick_at`)
);
--> statement-breakpoint
ALTER TABLE `function_versions` ADD `retries` integer DEFAULT 2 NOT NULL;--> statement-breakpoint
ALTER TABLE `function_versions` ADD `max_event_age_s` integer DEFAULT 21600 NOT NULL;--> statement-breakpoint
ALTER TABLE `function_versions` ADD `schedules` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
CREATE INDEX `invocations_job` ON `invocations` (`job_id`);