import { describe, expect, it } from "vitest";
import { startRetention } from "../../src/store/retention.js";
import { JOURNAL_SIZE_LIMIT_BYTES } from "../../src/store/sqlite/client.js";
import { ENGINE, makeGateway, okResult, register } from "./harness.js";

// LOG_MAX_MB bounds the log on either engine, after a burst of output much larger than it.

const MiB = 1024 * 1024;

describe("a burst of output past LOG_MAX_MB", () => {
  it("is pruned back under the budget, and on SQLite the files on disk stay near it (the write-ahead log cut back)", async () => {
    const gw = await makeGateway({ LOG_MAX_MB: "8", LOG_OUTPUT_MAX_BYTES: String(60 * 1024) });
    try {
      await register(gw, { name: "loud" });
      const output = Buffer.from("x".repeat(60 * 1024));
      gw.runner.script = () => okResult({ body: Buffer.from("ok") }, { stdout: { data: output, truncated: false } });
      // Retention as the gateway runs it: its interval, and a check each second of what was written since.
      const retention = startRetention(gw.store, {
        retentionDays: 0,
        retentionRows: 0,
        intervalMs: 3600_000,
        maxBytes: 8 * MiB,
        written: gw.cluster.log,
      });
      // 400 invocations of 60 KiB each over a few seconds: about 24 MiB of output, three times the budget.
      for (let batch = 0; batch < 40; batch++) {
        await Promise.all(Array.from({ length: 10 }, () => gw.call("/fn/loud")));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await retention.runOnce();
      retention.stop();
      expect(await gw.store.invocations.usedBytes()).toBeLessThanOrEqual(8 * MiB * 0.9);
      const sizes = await gw.store.sizes();
      if (ENGINE === "sqlite") {
        // Pages freed by pruning are reused, not returned: the file holds the burst's high water
        // mark, but the write-ahead log is cut back once checkpointed.
        await gw.sql("pragma wal_checkpoint(PASSIVE)");
        const onDisk = (await gw.store.sizes()).file_bytes;
        console.log(`files on disk after the burst: ${(onDisk / MiB).toFixed(1)} MiB`);
        expect(onDisk).toBeLessThan(2 * 8 * MiB + JOURNAL_SIZE_LIMIT_BYTES);
      }
      expect(sizes.used_bytes).toBeLessThanOrEqual(8 * MiB);
    } finally {
      await gw.close();
    }
  }, 120_000);
});
