ALTER TABLE `invocations` ADD `finished_seq` integer;--> statement-breakpoint
-- Rows that ended before the column existed: their start order is the best order there is.
UPDATE `invocations` SET `finished_seq` = `seq` WHERE `status` <> 'running';--> statement-breakpoint
CREATE UNIQUE INDEX `invocations_finished_seq` ON `invocations` (`finished_seq`);
