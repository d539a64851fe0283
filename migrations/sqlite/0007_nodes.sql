CREATE TABLE `nodes` (
	`id` text PRIMARY KEY NOT NULL,
	`version` text NOT NULL,
	`started_at` integer NOT NULL,
	`heartbeat_at` integer NOT NULL,
	`in_flight` integer DEFAULT 0 NOT NULL,
	`stopped_at` integer,
	`lost_at` integer
);
--> statement-breakpoint
CREATE TABLE `sessions` (
	`key` text PRIMARY KEY NOT NULL,
	`token_id` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `sessions_expires_at` ON `sessions` (`expires_at`);--> statement-breakpoint
ALTER TABLE `functions` ADD `revision` integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `invocations` ADD `node` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `invocations` ADD `trigger` text DEFAULT 'http' NOT NULL;--> statement-breakpoint
ALTER TABLE `invocations` ADD `attempt` integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `invocations` ADD `job_id` text;--> statement-breakpoint
ALTER TABLE `invocations` ADD `first_byte_ms` real;--> statement-breakpoint
ALTER TABLE `invocations` ADD `stdout_dropped_bytes` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `invocations` ADD `stderr_dropped_bytes` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `invocations` ADD `denied_syscalls` text;