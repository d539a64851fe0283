ALTER TABLE `function_versions` ADD `packages` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `function_versions` ADD `environment_key` text;--> statement-breakpoint
ALTER TABLE `functions` ADD `pending_version` integer;