CREATE TABLE "environments" (
	"key" text PRIMARY KEY NOT NULL,
	"runtime" text NOT NULL,
	"interpreter_version" text NOT NULL,
	"packages" jsonb NOT NULL,
	"resolver" text NOT NULL,
	"lock" text,
	"error" text,
	"output" text DEFAULT '' NOT NULL,
	"created_at" bigint NOT NULL,
	"used_at" bigint NOT NULL
);
