CREATE TABLE `function_versions` (
	`function_name` text NOT NULL,
	`version` integer NOT NULL,
	`runtime` text NOT NULL,
	`code` text NOT NULL,
	`timeout_ms` integer NOT NULL,
	`memory_mb` integer NOT NULL,
	`network` integer NOT NULL,
	`env` text NOT NULL,
	`public` integer NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`function_name`, `version`),
	FOREIGN KEY (`function_name`) REFERENCES `functions`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `functions` (
	`name` text PRIMARY KEY NOT NULL,
	`current_version` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `invocations` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`id` text NOT NULL,
	`function_name` text NOT NULL,
	`version` integer NOT NULL,
	`started_at` integer NOT NULL,
	`duration_ms` real,
	`exit_code` integer,
	`signal` text,
	`status` text NOT NULL,
	`http_status` integer,
	`request_bytes` integer NOT NULL,
	`response_bytes` integer,
	`stdout` text DEFAULT '' NOT NULL,
	`stderr` text DEFAULT '' NOT NULL,
	`stdout_truncated` integer DEFAULT false NOT NULL,
	`stderr_truncated` integer DEFAULT false NOT NULL,
	`error` text,
	`blocked_syscall` text,
	`method` text NOT NULL,
	`path` text NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `invocations_id_unique` ON `invocations` (`id`);--> statement-breakpoint
CREATE INDEX `invocations_function_seq` ON `invocations` (`function_name`,`seq`);--> statement-breakpoint
CREATE INDEX `invocations_function_status_seq` ON `invocations` (`function_name`,`status`,`seq`);--> statement-breakpoint
CREATE INDEX `invocations_status_seq` ON `invocations` (`status`,`seq`);--> statement-breakpoint
CREATE INDEX `invocations_started_at` ON `invocations` (`started_at`);--> statement-breakpoint
CREATE INDEX `invocations_function_started` ON `invocations` (`function_name`,`started_at`,`status`,`duration_ms`);--> statement-breakpoint
CREATE TABLE `settings` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
