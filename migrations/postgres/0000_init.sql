CREATE SEQUENCE "public"."invocations_finish_order" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1;--> statement-breakpoint
CREATE TABLE "function_versions" (
	"function_name" text NOT NULL,
	"version" integer NOT NULL,
	"runtime" text NOT NULL,
	"code" text NOT NULL,
	"timeout_ms" integer NOT NULL,
	"memory_mb" integer NOT NULL,
	"network" boolean NOT NULL,
	"env" jsonb NOT NULL,
	"public" boolean NOT NULL,
	"max_concurrency" integer,
	"packages" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"isolation" text DEFAULT 'invocation' NOT NULL,
	"env_sealed" boolean DEFAULT false NOT NULL,
	"environment_key" text,
	"created_at" bigint NOT NULL,
	CONSTRAINT "function_versions_function_name_version_pk" PRIMARY KEY("function_name","version")
);
--> statement-breakpoint
CREATE TABLE "functions" (
	"name" text PRIMARY KEY NOT NULL,
	"current_version" integer NOT NULL,
	"pending_version" integer,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"revision" integer DEFAULT 1 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "invocations" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"id" text NOT NULL,
	"function_name" text NOT NULL,
	"version" integer NOT NULL,
	"node" text DEFAULT '' NOT NULL,
	"trigger" text DEFAULT 'http' NOT NULL,
	"attempt" integer DEFAULT 1 NOT NULL,
	"job_id" text,
	"started_at" bigint NOT NULL,
	"duration_ms" double precision,
	"first_byte_ms" double precision,
	"exit_code" integer,
	"signal" text,
	"status" text NOT NULL,
	"http_status" integer,
	"request_bytes" integer NOT NULL,
	"response_bytes" bigint,
	"stdout" text DEFAULT '' NOT NULL,
	"stderr" text DEFAULT '' NOT NULL,
	"stdout_truncated" boolean DEFAULT false NOT NULL,
	"stderr_truncated" boolean DEFAULT false NOT NULL,
	"stdout_dropped_bytes" bigint DEFAULT 0 NOT NULL,
	"stderr_dropped_bytes" bigint DEFAULT 0 NOT NULL,
	"error" text,
	"blocked_syscall" text,
	"denied_syscalls" jsonb,
	"method" text NOT NULL,
	"path" text NOT NULL,
	"finished_seq" bigint,
	CONSTRAINT "invocations_id_unique" UNIQUE("id")
);
--> statement-breakpoint
CREATE TABLE "log_usage" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"bytes" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "nodes" (
	"id" text PRIMARY KEY NOT NULL,
	"version" text NOT NULL,
	"started_at" bigint NOT NULL,
	"heartbeat_at" bigint NOT NULL,
	"in_flight" integer DEFAULT 0 NOT NULL,
	"stopped_at" bigint,
	"lost_at" bigint
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"key" text PRIMARY KEY NOT NULL,
	"token_id" text NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"scopes" jsonb NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint,
	"last_used_at" bigint,
	CONSTRAINT "tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
ALTER TABLE "function_versions" ADD CONSTRAINT "function_versions_function_name_functions_name_fk" FOREIGN KEY ("function_name") REFERENCES "public"."functions"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "invocations_function_seq" ON "invocations" USING btree ("function_name","seq");--> statement-breakpoint
CREATE INDEX "invocations_function_status_seq" ON "invocations" USING btree ("function_name","status","seq");--> statement-breakpoint
CREATE INDEX "invocations_status_seq" ON "invocations" USING btree ("status","seq");--> statement-breakpoint
CREATE INDEX "invocations_started_at" ON "invocations" USING btree ("started_at");--> statement-breakpoint
CREATE INDEX "invocations_function_started" ON "invocations" USING btree ("function_name","started_at","status","duration_ms");--> statement-breakpoint
CREATE INDEX "invocations_node_status" ON "invocations" USING btree ("node","status");--> statement-breakpoint
CREATE UNIQUE INDEX "invocations_finished_seq" ON "invocations" USING btree ("finished_seq");--> statement-breakpoint
CREATE INDEX "sessions_expires_at" ON "sessions" USING btree ("expires_at");--> statement-breakpoint
INSERT INTO "log_usage" ("id", "bytes") VALUES (1, 0);
