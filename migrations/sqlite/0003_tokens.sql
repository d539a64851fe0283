CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`token_hash` text NOT NULL,
	`scopes` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer,
	`last_used_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tokens_token_hash_unique` ON `tokens` (`token_hash`);--> statement-breakpoint
INSERT INTO `tokens` (`id`, `name`, `token_hash`, `scopes`, `created_at`) SELECT 'root', 'first-start token', `value`, '["admin"]', CAST(strftime('%s', 'now') AS INTEGER) * 1000 FROM `settings` WHERE `key` = 'api_token_sha256';
--> statement-breakpoint
DELETE FROM `settings` WHERE `key` = 'api_token_sha256';
